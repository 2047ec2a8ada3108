// The page's view: which section is open (Dashboard or Monitoring, ?view=), the runs table's tab, search, sort,
// order and page, and the monitoring's model version; mirrored in the URL's query so a view can be shared or reloaded.

import { ORDER_BY_START_TIME, RUN_TYPE_INFERENCE, RUN_TYPE_TRAINING } from "./contract.js";

/** Each tab (its data-tab) and the run_type it asks the API for. */
export const TABS = { all: null, training: RUN_TYPE_TRAINING, inference: RUN_TYPE_INFERENCE };
const DEFAULT_SORT = ORDER_BY_START_TIME;

/** The top bar's sections (their data-section); the first is the default. */
export const SECTIONS = ["dashboard", "monitoring"];

export const view = { section: SECTIONS[0], modelVersion: "", tab: "all", q: "", sort: DEFAULT_SORT, order: "desc", page: 1 };

/** The view from the URL; anything missing or unknown falls back to its default. */
export function readView() {
  const query = new URLSearchParams(location.search);
  view.section = SECTIONS.includes(query.get("view")) ? query.get("view") : SECTIONS[0];
  view.modelVersion = query.get("model_version") || "";
  view.tab = query.get("tab") in TABS ? query.get("tab") : "all";
  view.q = query.get("q") || "";
  view.sort = query.get("sort") || DEFAULT_SORT;
  view.order = query.get("order") === "asc" ? "asc" : "desc";
  view.page = Math.max(1, parseInt(query.get("page"), 10) || 1);
}

/** The view into the URL (defaults left out), without a new history entry. */
export function writeView() {
  const query = new URLSearchParams();
  if (view.section !== SECTIONS[0]) query.set("view", view.section);
  if (view.modelVersion) query.set("model_version", view.modelVersion);
  if (view.tab !== "all") query.set("tab", view.tab);
  if (view.q) query.set("q", view.q);
  if (view.sort !== DEFAULT_SORT) query.set("sort", view.sort);
  if (view.order !== "desc") query.set("order", view.order);
  if (view.page > 1) query.set("page", String(view.page));
  const search = query.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

/** The API query of the view's runs (listing and CSV export), plus `extra`. */
export function runsQuery(extra = {}) {
  const query = new URLSearchParams({ order_by: view.sort, order: view.order, ...extra });
  if (TABS[view.tab]) query.set("run_type", TABS[view.tab]);
  if (view.q) query.set("search", view.q);
  return query;
}
