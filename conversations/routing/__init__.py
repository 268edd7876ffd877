"""Content routing: which administration a complaint goes to, from its text and place."""
from conversations.routing.normalise import normalise
from conversations.routing.router import Router, RoutingResult

__all__ = ["Router", "RoutingResult", "normalise"]
