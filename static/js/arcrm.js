// When an htmx request fails, say so in the page's message area. htmx swaps
// nothing for an error answer (base.html's responseHandling takes 422 only),
// so without this a refused or failed click would look as if nothing happened.
(function () {
  "use strict";

  function show(text) {
    var area = document.getElementById("messages");
    if (!area) return;
    var message = document.createElement("p");
    message.className = "message message-error";
    message.setAttribute("role", "alert");
    message.textContent = text;
    area.replaceChildren(message);
  }

  // The server's own words: the refusal pages (403, 404, 500 and a form
  // from an out-of-date page) say what happened in their .page-head.
  function serverSaid(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("text/html") !== 0) return "";
    var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
    var paragraphs = page.querySelectorAll(".page-head p:not(:last-child)");
    return Array.prototype.map.call(paragraphs, function (p) {
      return p.textContent.replace(/\s+/g, " ").trim();
    }).join(" ");
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    show(serverSaid(xhr) || (xhr.status >= 500
      ? "Something went wrong on the server (" + xhr.status + "). Reload the page to see what was saved, then try again."
      : "That was refused (" + xhr.status + "). Reload the page and try again."));
  });

  document.addEventListener("htmx:sendError", function () {
    show("The server could not be reached: check the connection, then try again.");
  });
})();
