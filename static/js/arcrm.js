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

// A list whose rows leave it once acted on (the worklist, the review and
// approval queues) says so with data-focus-next="<selector of the rows still
// to act on>". The button pressed goes with its row, and the focus would fall
// to the top of the page; it goes instead to the next row's first control, or
// the previous row's when it was the last, or the list's heading when none is
// left. A row that comes back still to act on (a refused form) keeps its own
// focus.
(function () {
  "use strict";

  var CONTROL = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), " +
    "select:not([disabled]), textarea:not([disabled])";
  var leaving = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var row = event.detail.target;
    var list = row && row.parentElement && row.parentElement.closest("[data-focus-next]");
    leaving = null;
    if (!list || !row.id || !row.matches(list.dataset.focusNext)) return;
    var rows = Array.prototype.slice.call(list.querySelectorAll(list.dataset.focusNext));
    var at = rows.indexOf(row);
    leaving = {list: list, id: row.id, after: rows.slice(at + 1), before: rows.slice(0, at).reverse()};
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (!leaving) return;
    var was = leaving;
    leaving = null;
    var row = document.getElementById(was.id);
    if (row && row.matches(was.list.dataset.focusNext)) return;
    var next = was.after.concat(was.before).filter(function (candidate) {
      return candidate.isConnected && candidate.matches(was.list.dataset.focusNext);
    });
    var control = next.length && next[0].querySelector(CONTROL);
    if (!control) {
      control = document.getElementById(was.list.getAttribute("aria-labelledby"));
      if (!control) return;
      if (!control.hasAttribute("tabindex")) control.setAttribute("tabindex", "-1");
    }
    control.focus();
  });
})();

// The account page's action panel closes once its form is done (or left):
// the focus, on a control that went with it, would fall to the page's body,
// and a keyboard user would start again from the top. It goes back to the
// link that opened the panel, where they left off (the account's parts around
// it may have been redrawn: the link is found again by its address). A link
// that went with what the form settled (the Decide link of a request now
// decided, the Withdraw link of a promise withdrawn) leaves the focus with the
// heading of the card that held it.
(function () {
  "use strict";

  var opener = null;
  var openerCard = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt.tagName === "A" && elt.getAttribute("hx-target") === "#action-panel") {
      opener = elt.getAttribute("href");
      var card = elt.closest("section[aria-labelledby]");
      openerCard = card && card.getAttribute("aria-labelledby");
    }
  });

  function returnFocus() {
    var panel = document.getElementById("action-panel");
    if (!opener || !panel || panel.children.length) return;
    var lost = document.activeElement;
    var was = opener;
    var card = openerCard;
    opener = openerCard = null;
    if (lost && lost !== document.body && lost.isConnected) return;
    var link = document.querySelector('a[hx-target="#action-panel"][href="' + CSS.escape(was) + '"]') ||
      // A link that went with what it acted on (a payment's Reverse…, once
      // it is reversed) leaves its place marked: the keyboard goes there.
      document.querySelector('[data-panel-opener="' + CSS.escape(was) + '"]');
    if (!link && card) {
      link = document.getElementById(card);
      if (link && !link.hasAttribute("tabindex")) link.setAttribute("tabindex", "-1");
    }
    if (link) link.focus();
  }

  document.addEventListener("htmx:afterSettle", returnFocus);

  // Cancel closes the panel without a request, so no htmx event follows it:
  // it empties the panel here and hands the focus back the same way.
  document.addEventListener("click", function (event) {
    var cancel = event.target.closest("[data-panel-cancel]");
    var panel = cancel && cancel.closest("#action-panel");
    if (!panel) return;
    event.preventDefault();
    var empty = document.createElement("div");
    empty.id = "action-panel";
    panel.replaceWith(empty);
    returnFocus();
  });

  // Escape in a panel is its Cancel link, pressed: from the keyboard the way
  // out of a form, not a dozen Tabs to the link. Not when a menu or a date
  // picker took the key to close itself.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    var panel = event.target.closest && event.target.closest("#action-panel, .work-decision");
    var cancel = panel && panel.querySelector("[data-panel-cancel], [data-decision-cancel]");
    if (!cancel) return;
    event.preventDefault();
    cancel.click();
  });

  // The worklist's "Done…" panel, the same way: it gives back its slot in the
  // item, and the focus goes to the "Done…" link that fills that slot.
  document.addEventListener("click", function (event) {
    var cancel = event.target.closest("[data-decision-cancel]");
    var panel = cancel && cancel.closest(".work-decision");
    if (!panel) return;
    event.preventDefault();
    var slot = document.createElement("div");
    slot.id = panel.id;
    panel.replaceWith(slot);
    var link = document.querySelector('a[hx-target="#' + CSS.escape(slot.id) + '"]');
    if (link) link.focus();
  });
})();

// A field asked only when others change says which with data-asked-when="<their
// names>" on its control (the account card's "Why the credit hold or payment
// terms change"). It waits hidden until one of them differs from what the page
// came with, and a screen reader hears that it appeared; put back, it hides
// again. Without script it is simply always shown. One that holds a value or
// an error (a form sent back refused) stays shown.
(function () {
  "use strict";

  function valueOf(control) {
    return control.type === "checkbox" || control.type === "radio" ? String(control.checked) : control.value;
  }

  function watched(asked) {
    return asked.dataset.askedWhen.split(" ").map(function (name) {
      return asked.form.elements.namedItem(name);
    }).filter(Boolean);
  }

  function update(asked, said) {
    var field = asked.closest(".field");
    var wanted = asked.value.trim() !== "" || field.classList.contains("has-error") ||
      watched(asked).some(function (control) { return valueOf(control) !== control.dataset.askedWas; });
    if (wanted === !field.hidden) return;
    field.hidden = !wanted;
    var label = field.querySelector("label");
    said.textContent = wanted && label ? "New field below: " + label.textContent.trim() + "." : "";
  }

  function start(asked) {
    if (asked.dataset.askedStarted || !asked.form) return;
    asked.dataset.askedStarted = "true";
    // Present before it speaks: a live region added with its text is not announced.
    var said = document.createElement("p");
    said.className = "visually-hidden";
    said.setAttribute("role", "status");
    asked.closest(".field").before(said);
    watched(asked).forEach(function (control) {
      control.dataset.askedWas = valueOf(control);
      control.addEventListener("change", function () { update(asked, said); });
    });
    update(asked, said);
  }

  // On the page as it loads and on every part htmx swaps in (the card opened on the account page).
  document.addEventListener("htmx:load", function (event) {
    var root = event.detail.elt;
    if (root.matches && root.matches("[data-asked-when]")) start(root);
    if (root.querySelectorAll) root.querySelectorAll("[data-asked-when]").forEach(start);
  });
})();

// "Load more" on a timeline goes with the events it brings: the focus, on the
// link, would fall to the page's body, and a keyboard or screen-reader user
// would start again from the top. It goes to the first event loaded, where
// they read on.
(function () {
  "use strict";

  var lastBefore = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    var more = event.detail.elt.closest(".load-more");
    lastBefore = more ? more.previousElementSibling : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    var last = lastBefore;
    lastBefore = null;
    var lost = document.activeElement;
    if (!last || !last.isConnected || (lost && lost !== document.body && lost.isConnected)) return;
    var first = last.nextElementSibling;
    if (!first || first.classList.contains("load-more")) return;
    if (!first.hasAttribute("tabindex")) first.setAttribute("tabindex", "-1");
    first.focus();
  });
})();

// A menu asked for anew (the cover page's stand-ins, when who is away or the
// days change) arrives drawn with the choice made when it was asked for. A
// choice made while it was on its way would be lost, and the form saved
// without it: the menu keeps the person chosen meanwhile if it still offers them.
(function () {
  "use strict";

  var kept = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var menu = event.detail.target;
    kept = null;
    if (menu && menu.tagName === "SELECT" && menu.id && menu.value) kept = {id: menu.id, value: menu.value};
  });

  document.addEventListener("htmx:afterSwap", function () {
    var was = kept;
    kept = null;
    var menu = was && document.getElementById(was.id);
    if (!menu || menu.tagName !== "SELECT") return;
    var offered = Array.prototype.some.call(menu.options, function (option) {
      return option.value === was.value && !option.disabled;
    });
    if (offered) menu.value = was.value;
  });
})();
