/* Progressive enhancement for the console: live refresh, canned responses, routing suggestions.
   Every page works without it. No inline script (the CSP forbids it), no build step. */
(function () {
  "use strict";
  var csrf = document.body.getAttribute("data-csrf") || "";

  function poll(box) {
    var url = box.getAttribute("data-live-url");
    var version = box.getAttribute("data-version") || "";
    var sep = url.indexOf("?") >= 0 ? "&" : "?";
    fetch(url + sep + "v=" + encodeURIComponent(version), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !data.version || data.version === version) { return; }
        box.setAttribute("data-version", data.version);
        // The fragments are rendered (and escaped) by the server's templates.
        [["data-target-html", "html"], ["data-target-timeline", "timeline"], ["data-target-summary", "summary"]]
          .forEach(function (pair) {
            var id = box.getAttribute(pair[0]);
            var el = id && document.getElementById(id);
            if (el && typeof data[pair[1]] === "string") { el.innerHTML = data[pair[1]]; }
          });
        var total = document.getElementById("total");
        if (total && typeof data.total === "number") { total.textContent = total.textContent.replace(/\d+/, String(data.total)); }
      })
      .catch(function () { /* offline for a moment: try again next time */ })
      .then(function () { setTimeout(function () { poll(box); }, document.hidden ? 15000 : 3000); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-live-url]"), function (box) {
    setTimeout(function () { poll(box); }, 3000);
  });

  var canned = document.getElementById("canned");
  var replyText = document.getElementById("reply-text");
  if (canned && replyText) {
    canned.addEventListener("change", function () {
      if (!canned.value) { return; }
      replyText.value = replyText.value ? replyText.value.replace(/\s*$/, "\n") + canned.value : canned.value;
      canned.value = "";
      replyText.focus();
    });
  }

  var text = document.getElementById("intake-text");
  var category = document.getElementById("intake-category");
  var place = document.getElementById("intake-place");
  var out = document.getElementById("suggestion");
  if (text && category && out) {
    // The suggestion is shown, and named in the "router's choice" option; the agent may pick another.
    var auto = category.options[0];
    var autoLabel = auto ? auto.textContent : "";
    var timer = null;
    var lang = document.documentElement.getAttribute("lang") || "fr";
    var suggest = function () {
      if (text.value.trim().length < 8) { out.textContent = ""; if (auto) { auto.textContent = autoLabel; } return; }
      fetch("/api/v1/routing/suggest", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json"},
        body: JSON.stringify({text: text.value, language: lang})
      }).then(function (r) { return r.ok ? r.json() : null; }).then(function (s) {
        if (!s) { return; }
        if (s.category) {
          out.textContent = out.getAttribute("data-template")
            .replace("{category}", s.category_name || s.category)
            .replace("{administration}", s.administration_name || s.administration || "");
          if (auto) { auto.textContent = autoLabel + " " + (s.category_name || s.category); }
        } else {
          out.textContent = out.getAttribute("data-none");
          if (auto) { auto.textContent = autoLabel; }
        }
        category.setAttribute("data-suggested", s.category || "");
        if (place && place.options[0]) {
          var named = s.place && place.querySelector("option[value='" + s.place.replace(/[^a-z0-9_-]/gi, "") + "']");
          place.options[0].textContent = place.options[0].textContent.replace(/ —.*$/, "") +
            (s.place ? " — " + (named ? named.textContent : s.place) : "");
        }
      }).catch(function () {});
    };
    text.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(suggest, 400); });
    if (text.value) { suggest(); }
  }
})();
