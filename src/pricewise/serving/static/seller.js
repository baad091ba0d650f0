// Seller page: send the form to the suggestion API, show price, range slider, reasons, comparables and a notice
// when the estimate is less certain, and send the accepted price back as feedback. No dependencies, works offline.
"use strict";

const form = document.getElementById("listing-form");
const submitButton = document.getElementById("suggest");
const submitLabel = submitButton.textContent;
const categoryInput = document.getElementById("category_name");
const money = (value) => "$" + Number(value).toFixed(2);
const percent = (effect) => Math.round(Math.abs(effect) * 100) + "%";
let requestId = null;
let pricing = false;

// The categories the form offers, and the words for condition codes as the form's radio buttons show them.
const offeredCategories = new Set(Array.from(document.querySelectorAll("#categories option"), (o) => o.value));
const conditionWords = new Map(
  Array.from(document.querySelectorAll("input[name=item_condition_id]"), (input) => [
    Number(input.value),
    input.parentElement.querySelector(".condition-word").textContent.trim(),
  ]),
);

function text(id, value) { document.getElementById(id).textContent = value; }
function show(id, visible) { document.getElementById(id).hidden = !visible; }

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = false;
}

function describeErrors(body) {
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => e.loc.slice(1).join(".") + ": " + e.msg).join("; ");
  }
  return (body && body.detail) || "something went wrong";
}

function fillList(id, items) {
  const list = document.getElementById(id);
  list.replaceChildren(...items);
  return items.length;
}

function item(content, cls) {
  const li = document.createElement("li");
  li.textContent = content;
  if (cls) li.className = cls;
  return li;
}

// The range is the model's interval around its estimate; coverage says how often such intervals held the
// price on listings held out of training.
function coverageSentence(coverage) {
  const tenths = Math.round(coverage * 10);
  const share = tenths >= 1 && tenths <= 9 && Math.abs(coverage * 10 - tenths) < 0.25
    ? tenths + " in 10"
    : Math.round(coverage * 100) + " in 100";
  return "About " + share + " past listings like this one sold inside a range drawn this way.";
}

function reasonText(reason, direction) {
  if (reason.text) return reason.text;
  const sign = direction === "up" ? "+" : "-";
  return reason.feature + " (" + sign + percent(reason.effect) + ")";
}

function renderReasons(explanation) {
  const up = (explanation && explanation.up) || [];
  const down = (explanation && explanation.down) || [];
  const ups = fillList("reasons-up", up.map((r) => item(reasonText(r, "up"), "up")));
  const downs = fillList("reasons-down", down.map((r) => item(reasonText(r, "down"), "down")));
  show("reasons-up-block", ups > 0);
  show("reasons-down-block", downs > 0);
  show("no-reasons", ups + downs === 0);
  const note = (explanation && explanation.note) || "";
  text("explanation-note", note);
  show("explanation-note", note !== "");
}

function conditionWord(comparable) {
  return comparable.condition
    || conditionWords.get(comparable.item_condition_id)
    || "condition " + comparable.item_condition_id;
}

function comparableItem(c) {
  const li = document.createElement("li");
  li.className = "comparable";
  const name = document.createElement("span");
  name.className = "comparable-name";
  name.textContent = c.name;
  const details = document.createElement("span");
  details.className = "comparable-details";
  details.textContent = (c.brand_name || "no brand") + " · " + conditionWord(c);
  const price = document.createElement("span");
  price.className = "comparable-price";
  price.textContent = money(c.price);
  li.append(name, details, price);
  return li;
}

function renderComparables(comparables) {
  const items = (comparables || []).map(comparableItem);
  if (items.length === 0) items.push(item("No similar listings found.", "muted"));
  fillList("comparables", items);
}

function whatIfText(w) {
  return w.text || (w.field + " " + w.value + ": " + money(w.price));
}

function renderConfidence(confidence) {
  const low = Boolean(confidence) && confidence.level === "low";
  show("low-confidence", low);
  const unfamiliar = low ? confidence.unfamiliar || [] : [];
  const whatIf = low ? confidence.what_if || [] : [];
  fillList("unfamiliar", unfamiliar.map((sentence) => item(sentence, "")));
  show("unfamiliar", unfamiliar.length > 0);
  fillList("what-if", whatIf.map((w) => item(whatIfText(w), "")));
  show("what-if-block", whatIf.length > 0);
}

function render(s) {
  requestId = s.request_id;
  text("price", money(s.price));
  text("low", money(s.low));
  text("high", money(s.high));
  text("coverage", coverageSentence(s.coverage));
  const slider = document.getElementById("chosen");
  slider.min = s.low;
  slider.max = s.high;
  slider.value = s.price;
  text("chosen-value", money(s.price));
  renderConfidence(s.confidence);
  renderReasons(s.explanation);
  renderComparables(s.comparables);
  text("model-line", "Model " + s.model.name + " v" + (s.model.version || "-") + (s.model.fallback ? " (fallback rules)" : "") + ", request " + s.request_id);
  document.getElementById("accepted").hidden = true;
  document.getElementById("accept").disabled = false;
  document.getElementById("result").hidden = false;
}

// A category typed but not picked from the list is still sent (the model prices it from the other fields);
// the seller is told so rather than stopped.
function checkCategory() {
  const typed = categoryInput.value.trim();
  const unknown = typed !== "" && offeredCategories.size > 0 && !offeredCategories.has(typed);
  text("category-warning", unknown
    ? "\u201c" + typed + "\u201d is not one of the offered categories, so the price may be less accurate. "
      + "Pick one from the list if one fits; you can still ask for a price."
    : "");
  show("category-warning", unknown);
}

function setPricing(busy) {
  pricing = busy;
  submitButton.disabled = busy;
  submitButton.textContent = busy ? "Pricing..." : submitLabel;
}

async function requestSuggestion(listing) {
  let response;
  try {
    response = await fetch("/v1/suggestions?include=explanation,comparables", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(listing),
    });
  } catch {
    showError("Could not reach the pricing service. Check your connection and try again.");
    return;
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) { showError(describeErrors(body)); return; }
  if (!body) { showError("The pricing service sent an answer this page cannot read. Please try again."); return; }
  render(body);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (pricing) return;
  document.getElementById("error").hidden = true;
  checkCategory();
  const data = new FormData(form);
  const optional = (key) => (data.get(key) || "").trim() || null;
  const listing = {
    name: (data.get("name") || "").trim(),
    brand_name: optional("brand_name"),
    category_name: optional("category_name"),
    item_condition_id: Number(data.get("item_condition_id") || 3),
    shipping: data.get("shipping") ? 1 : 0,
    item_description: optional("item_description"),
  };
  if (!listing.name) { showError("Please enter a title."); return; }
  setPricing(true);
  try {
    await requestSuggestion(listing);
  } finally {
    setPricing(false);
  }
});

// Checked on submit, not when the field loses focus: a warning appearing then would move the form under the
// seller's pointer. Once shown, it follows what is typed.
categoryInput.addEventListener("input", () => {
  if (!document.getElementById("category-warning").hidden) checkCategory();
});

document.getElementById("chosen").addEventListener("input", (event) => {
  text("chosen-value", money(event.target.value));
});

document.getElementById("accept").addEventListener("click", async () => {
  if (!requestId) return;
  const chosen = Number(document.getElementById("chosen").value);
  let response;
  try {
    response = await fetch("/v1/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ request_id: requestId, chosen_price: chosen }),
    });
  } catch {
    showError("Could not reach the pricing service to save your price. Please try again.");
    return;
  }
  if (!response.ok) { showError(describeErrors(await response.json().catch(() => null))); return; }
  document.getElementById("accepted").hidden = false;
  document.getElementById("accept").disabled = true;
});
