// tcauth web UI: progressive enhancement only (every page works without it).
// Copy buttons: <button class="copy" data-copy="ID" hidden> copies the text
// of the element with that id.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
    var target = document.getElementById(b.getAttribute("data-copy"));
    if (!target || !navigator.clipboard) {
      return;
    }
    b.hidden = false;
    b.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        b.textContent = "Copied";
        setTimeout(function () { b.textContent = "Copy"; }, 2000);
      }, function () {
        b.textContent = "Copy failed";
      });
    });
  });
});
