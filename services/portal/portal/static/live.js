// The conference page's live part: fetch the fragment of totals and invitations every few
// seconds and put it in place, so statuses and answers change without a reload. Without this
// script the page is the same; a reload shows the news.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !live.dataset.url || !window.fetch) {
    return;
  }
  var every = 2000;
  function refresh() {
    if (document.hidden) {
      window.setTimeout(refresh, every);
      return;
    }
    window
      .fetch(live.dataset.url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) {
        // a session that ran out redirects to the sign-in: keep the page as it is, a reload signs in
        return answer.ok && !answer.redirected ? answer.text() : null;
      })
      .then(function (html) {
        // focus inside (a resend button) would be lost by the swap: wait for it to leave
        if (html !== null && html !== live.dataset.last && !live.contains(document.activeElement)) {
          live.innerHTML = html;
          live.dataset.last = html;
        }
      })
      .catch(function () {})
      .then(function () {
        window.setTimeout(refresh, every);
      });
  }
  window.setTimeout(refresh, every);
})();
