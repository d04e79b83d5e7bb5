// Tocsin dashboard: live regions, actions without a reload, template previews, copy buttons.
// Plain JavaScript, no build step. Every POST carries the session's CSRF token.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  function say(text) {
    var status = document.getElementById("status");
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 30);  // re-announced even if unchanged
  }

  function send(url, body, contentType) {
    var headers = {"X-CSRF-Token": csrf, "X-Requested-With": "fetch"};
    if (contentType) headers["Content-Type"] = contentType;
    return fetch(url, {method: "POST", body: body, headers: headers, credentials: "same-origin"});
  }

  // At phone width the filters fold away unless one is set, so the list comes first.
  document.querySelectorAll("details[data-fold-on-phone]").forEach(function (box) {
    var set = Array.prototype.some.call(box.querySelectorAll("input, select"), function (field) { return field.value; });
    if (!set && window.matchMedia("(max-width: 640px)").matches) box.open = false;
  });

  // Live regions: re-read their fragment (same filters: the URL carries them) and swap it in
  // when it changed, unless the user is working inside it.
  document.querySelectorAll("[data-live-src]").forEach(function (region) {
    var every = parseInt(region.getAttribute("data-live-every"), 10) || 5000;
    function refresh() {
      var active = document.activeElement;
      if (document.hidden || (region.contains(active) && /^(SELECT|INPUT|TEXTAREA)$/.test(active.tagName))) {
        return;  // the user is choosing something in it: do not pull it away
      }
      fetch(region.getAttribute("data-live-src"), {headers: {"X-Requested-With": "fetch"}, credentials: "same-origin"})
        .then(function (response) {
          var version = response.headers.get("X-Live-Version");
          if (!response.ok || !version || version === region.getAttribute("data-live-version")) return;
          return response.text().then(function (html) {
            region.innerHTML = html;
            region.setAttribute("data-live-version", version);
          });
        })
        .catch(function () { /* offline for a moment: the next poll tries again */ });
    }
    window.setInterval(refresh, every);
    refresh();
  });

  // Forms marked data-fetch post in the background; the answer replaces their target region.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var target = form.getAttribute("data-fetch");
    if (!target) return;
    event.preventDefault();
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    send(form.action, new URLSearchParams(new FormData(form)), "application/x-www-form-urlencoded")
      .then(function (response) {
        return response.text().then(function (text) {
          return {ok: response.ok, status: response.status, text: text, version: response.headers.get("X-Live-Version")};
        });
      })
      .then(function (answer) {
        var region = target === "status" ? null : document.querySelector(target);
        if (region && /^\s*</.test(answer.text)) {
          region.innerHTML = answer.text;
          if (answer.version) region.setAttribute("data-live-version", answer.version);
          var next = region.querySelector("button");  // keyboard users stay where they were
          if (next) next.focus();
          var state = region.querySelector("#group-state");
          say(answer.ok ? "Done. State: " + (state ? state.textContent : "updated") : "Refused.");
        } else {
          say(answer.text || ("Error " + answer.status));
        }
      })
      .catch(function () { say("The server could not be reached. Try again."); })
      .finally(function () { buttons.forEach(function (b) { b.disabled = false; }); });
  });

  // Template previews, rendered by the server against the integration's newest alert.
  var editor = document.querySelector("form[data-preview-url]");
  if (editor) {
    var url = editor.getAttribute("data-preview-url");
    var timers = {};
    var preview = function (area) {
      var out = editor.querySelector('[data-preview-for="' + area.getAttribute("data-template") + '"]');
      var body = JSON.stringify({template_name: area.getAttribute("data-template"), template_body: area.value});
      send(url, body, "application/json")
        .then(function (response) { return response.json(); })
        .then(function (result) {
          out.classList.toggle("failed", Boolean(result.error));
          if (result.error) {
            out.textContent = result.error;
          } else {
            var text = result.preview === null ? "(empty)" : result.preview;
            if ("grouping_distinction" in result) text += "  → group " + (result.grouping_distinction || "of its own");
            if ("is_resolve_signal" in result) text += "  → " + (result.is_resolve_signal ? "resolves" : "does not resolve");
            if ("is_acknowledge_signal" in result) text += "  → " + (result.is_acknowledge_signal ? "acknowledges" : "does not acknowledge");
            out.textContent = text;
          }
        })
        .catch(function () { out.textContent = "Preview unavailable right now."; });
    };
    editor.querySelectorAll("textarea[data-template]").forEach(function (area) {
      area.addEventListener("input", function () {
        window.clearTimeout(timers[area.id]);
        timers[area.id] = window.setTimeout(function () { preview(area); }, 300);
      });
      area.addEventListener("focus", function () { preview(area); }, {once: true});
    });
  }

  // Copy buttons.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    source.select();
    var done = function () { say("Copied."); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });
})();
