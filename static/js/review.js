// Review page: one key per action. Each key clicks the button that carries it (data-key), so keys and
// buttons run the same htmx request. The CSRF header comes from base.html's hx-headers.
(function () {
  "use strict";

  var KEYS = { g: "g", b: "b", " ": "skip", ArrowRight: "skip", ArrowLeft: "back", u: "u", a: "a", c: "c", e: "e", "?": "?" };
  // Busy from a request until htmx has settled the new item (its buttons are wired only then).
  var busy = false;
  var pending = null;

  function item() { return document.getElementById("review-item"); }
  function help() { return document.getElementById("review-help"); }

  function toggleHelp(show) {
    var h = help();
    if (!h) return;
    h.hidden = show === undefined ? !h.hidden : !show;
  }

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // Warm the browser cache with the next item's images, so the swap shows them at once.
  var preloaded = [];
  function preload() {
    var el = item();
    if (!el || !el.dataset.preload) return;
    el.dataset.preload.split(" ").forEach(function (url) {
      if (!url) return;
      var img = new Image();
      img.src = url;
      preloaded.push(img);
    });
    if (preloaded.length > 8) preloaded = preloaded.slice(-8);
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    var action = KEYS[ev.key];
    if (!action) {
      if (ev.key === "Escape") toggleHelp(false);
      return;
    }
    ev.preventDefault();
    if (action === "?") { toggleHelp(); return; }
    // A key held down must not rate the items that come after.
    if (ev.repeat) return;
    // A key pressed while the next item is on its way acts on that item once it is there.
    if (busy) { pending = action; return; }
    press(action);
  });

  function press(action) {
    var el = item();
    if (!el) return;
    var button = el.querySelector('[data-key="' + action + '"]');
    if (!button || button.disabled) return;
    button.click();
  }

  function idle() {
    busy = false;
    var action = pending;
    pending = null;
    if (action) press(action);
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest && ev.target.closest('[data-key="?"], [data-help-close]');
    if (t) { ev.preventDefault(); toggleHelp(t.hasAttribute("data-help-close") ? false : undefined); }
  });

  document.addEventListener("htmx:beforeRequest", function () { busy = true; });
  document.addEventListener("htmx:afterRequest", function (ev) {
    // A failed request swaps nothing, so no settle event follows.
    if (!ev.detail.successful) idle();
  });
  document.addEventListener("htmx:afterSettle", function () { preload(); idle(); });
  // Back from the editor with the browser's back button: a page restored from the back-forward cache
  // shows the item as it was before the save; fetch it again (corrected by NAME, claimed anew).
  window.addEventListener("pageshow", function (ev) {
    var el = item();
    if (ev.persisted && el && el.dataset.here && window.htmx) {
      window.htmx.ajax("GET", el.dataset.here, { target: "#review-item", swap: "outerHTML" });
    }
  });
  document.addEventListener("DOMContentLoaded", preload);
})();
