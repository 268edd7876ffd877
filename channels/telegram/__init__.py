"""The Telegram channel: webhook Updates in (secret token), the Bot API out (python-telegram-bot)."""
