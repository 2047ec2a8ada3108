// The top bar's sections, Dashboard (forms, trends, runs) and Monitoring, as a tab list: one panel shows at a time,
// and the open one is kept in the URL (view.js) so a reload or a shared link opens it again.

import { SECTIONS, view, writeView } from "./view.js";

let opened = {}; // section -> what to do each time it is opened

/** Show the section `name`, hide the others, and run its `opened` callback (a monitoring refresh). */
export function showSection(name) {
  view.section = SECTIONS.includes(name) ? name : SECTIONS[0];
  for (const tab of document.querySelectorAll(".section-tab")) {
    const active = tab.dataset.section === view.section;
    tab.classList.toggle("active", active);
    tab.setAttribute("aria-selected", String(active));
    tab.tabIndex = active ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !active;
  }
  writeView();
  opened[view.section]?.();
}

/** Wire the section tabs (click, arrow keys) and open the URL's section; `onOpen` maps a section to its refresh. */
export function initSections(onOpen = {}) {
  opened = onOpen;
  const tabs = [...document.querySelectorAll(".section-tab")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => showSection(tab.dataset.section));
    tab.addEventListener("keydown", (e) => { // arrow keys move between tabs, as in the runs card's tab list
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      next.focus();
      next.click();
    });
  }
  showSection(view.section);
}
