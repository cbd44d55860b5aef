// The live part of a page (#live) is fetched again from its data-live URL,
// rendered by the server, every data-refresh milliseconds: no page reload.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var status = document.getElementById("status");
  if (!live) {
    return;
  }
  var url = live.getAttribute("data-live");
  var every = parseInt(live.getAttribute("data-refresh"), 10) || 1000;
  function show(ok, text) {
    if (status) {
      status.textContent = text;
      status.className = ok ? "status" : "status stale";
    }
  }
  function tick() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("HTTP " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        live.setAttribute("data-updated", String(Date.now()));
        show(true, "live");
      })
      .catch(function (e) {
        show(false, "stale: " + e.message);
      })
      .then(function () {
        setTimeout(tick, every);
      });
  }
  setTimeout(tick, every);
})();
