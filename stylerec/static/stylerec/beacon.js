// StyleRec beacon: reports which personalized images were actually seen (at least half in
// view, loaded), and add-to-cart clicks, in batches sent with navigator.sendBeacon.
// Clicks through to product pages are recorded by the server (the link carries the decision).
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = (script && script.dataset.endpoint) || "/api/v1/events/";
  var queue = [];
  var seen = {};
  var MAX_BATCH = 100;

  function push(type, image, extra) {
    var decision = parseInt(image.dataset.decision, 10);
    if (!decision) return;
    var event = { type: type, decision: decision, product: image.dataset.product, ts: new Date().toISOString() };
    Object.keys(extra || {}).forEach(function (key) { if (extra[key]) event[key] = extra[key]; });
    queue.push(event);
    if (queue.length >= MAX_BATCH) flush();
  }

  function flush() {
    while (queue.length) {
      var body = JSON.stringify({ events: queue.splice(0, MAX_BATCH) });
      var sent = false;
      if (navigator.sendBeacon) {
        sent = navigator.sendBeacon(endpoint, new Blob([body], { type: "application/json" }));
      }
      if (!sent && window.fetch) {
        fetch(endpoint, { method: "POST", body: body, keepalive: true, credentials: "same-origin",
                          headers: { "Content-Type": "application/json" } }).catch(function () {});
      }
    }
  }

  function impression(image) {
    var key = image.dataset.decision;
    if (!key || seen[key]) return;
    seen[key] = true;
    push("impression", image);
  }

  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      var image = entry.target;
      if (!entry.isIntersecting) return;
      if (image.complete && image.naturalWidth > 0) {
        impression(image);
        observer.unobserve(image);
      } else {
        image.addEventListener("load", function () { impression(image); }, { once: true });
      }
    });
  }, { threshold: 0.5 }) : null;

  function watch() {
    document.querySelectorAll("img[data-decision]").forEach(function (image) {
      if (observer && image.dataset.decision) observer.observe(image);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-stylerec-add-to-cart]");
    if (!button) return;
    var product = button.getAttribute("data-stylerec-add-to-cart");
    var image = document.querySelector('img[data-decision][data-product="' + product + '"]');
    // data-stylerec-value / -currency on the button: what the add-to-cart was worth.
    var worth = { value: button.getAttribute("data-stylerec-value"),
                  currency: button.getAttribute("data-stylerec-currency") };
    if (image) { push("add_to_cart", image, worth); flush(); }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flush();
  });
  window.addEventListener("pagehide", flush);
  setInterval(flush, 2000);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
  window.stylerec = { flush: flush };
})();
