// Building elements. Every value from the server is put on the page as text (textContent), never parsed as HTML.

/** An element with attributes ("class" sets className, "text" sets textContent) and children (null ones skipped). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** A figure with its label under it, as in the result cards and the runs summary. */
export function stat(label, value) {
  return el("div", { class: "stat" }, el("span", { class: "value", text: value }), el("span", { class: "label", text: label }));
}

/** A horizontal bar filled to `fraction` (clamped to 0..1), named on the left and labelled on the right. */
export function bar(name, fraction, label) {
  const fill = el("div", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`; // CSSOM, which the CSP allows (no style attribute)
  return el("div", { class: "bar" },
    el("span", { class: "name", text: name, title: name }),
    el("div", { class: "track" }, fill),
    el("span", { text: label }));
}
