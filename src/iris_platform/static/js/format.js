// How the page writes numbers, shares and times: pure functions, also called by the browser tests.

/** What the page shows for a value that is missing. */
export const MISSING = "–";
/** Decimals of the numbers in the run popup and the comparison table. */
export const DETAIL_DIGITS = 4;

/** Integers as they are, other numbers with `digits` decimals, anything else as text (missing: "–"). */
export const formatNumber = (value, digits = 3) =>
  typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toFixed(digits)) : String(value ?? MISSING);

/** A param or metric value in the run popup and the comparison table. */
export const formatDetail = (value) => formatNumber(value, DETAIL_DIGITS);

/** A fraction (0.9667) as a percentage with one decimal ("96.7%"); anything but a number: "–". */
export const formatPercent = (value) => (typeof value === "number" ? (value * 100).toFixed(1) + "%" : MISSING);

/** A mean and standard deviation of fractions (cross-validation folds): "95.3% ± 2.1%". */
export const formatMeanStd = (mean, std) => `${formatPercent(mean)} ± ${formatPercent(std)}`;

/** What a hyperparameter without a limit (null, as max_depth may be) is called on the page. */
export const NO_LIMIT = "no limit";

/** A hyperparameter's value as it was set (2.5, not 2.5000); null is "no limit". */
export const formatHyperparameter = (value) => (value === null || value === undefined ? NO_LIMIT : String(value));

/** `count` out of `total` as a percentage with one decimal. */
export const formatShare = (count, total) => `${((100 * count) / total).toFixed(1)}%`;

/** A class's rows in a batch: "3 · 60.0%". */
export const formatCountShare = (count, total) => `${count} · ${formatShare(count, total)}`;

/** A date and time (an ISO string, a Date or milliseconds) in the browser's locale. */
export const formatDateTime = (when) => new Date(when).toLocaleString();

/** The time of day (an ISO string, a Date or milliseconds; default: now) in the browser's locale. */
export const formatTime = (when = Date.now()) => new Date(when).toLocaleTimeString();
