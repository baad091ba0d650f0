// Seller page: send the form to the suggestion API, show price, range slider, reasons and comparables,
// and send the accepted price back as feedback. No dependencies, works offline.
"use strict";

const form = document.getElementById("listing-form");
const money = (value) => "$" + Number(value).toFixed(2);
let requestId = null;

function text(id, value) { document.getElementById(id).textContent = value; }

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

function listItems(id, items) {
  const list = document.getElementById(id);
  list.replaceChildren();
  for (const [content, cls] of items) {
    const li = document.createElement("li");
    li.textContent = content;
    if (cls) li.className = cls;
    list.appendChild(li);
  }
}

function render(s) {
  requestId = s.request_id;
  text("price", money(s.price));
  text("low", money(s.low));
  text("high", money(s.high));
  text("coverage", Math.round(s.coverage * 100) + " %");
  const slider = document.getElementById("chosen");
  slider.min = s.low;
  slider.max = s.high;
  slider.value = s.price;
  text("chosen-value", money(s.price));
  const reasons = [];
  if (s.explanation) {
    for (const r of s.explanation.up) reasons.push(["▲ " + r.feature + " (+" + Math.round(r.effect * 100) + " %)", "up"]);
    for (const r of s.explanation.down) reasons.push(["▼ " + r.feature + " (" + Math.round(r.effect * 100) + " %)", "down"]);
  }
  if (reasons.length === 0) reasons.push(["No individual reasons for this estimate.", ""]);
  listItems("reasons", reasons);
  const comparables = (s.comparables || []).map((c) => [c.name + " (" + (c.brand_name || "no brand") + ", condition " + c.item_condition_id + "): " + money(c.price), ""]);
  if (comparables.length === 0) comparables.push(["No similar listings found.", ""]);
  listItems("comparables", comparables);
  text("model-line", "Model " + s.model.name + " v" + (s.model.version || "-") + (s.model.fallback ? " (fallback rules)" : "") + ", request " + s.request_id);
  document.getElementById("accepted").hidden = true;
  document.getElementById("accept").disabled = false;
  document.getElementById("result").hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  document.getElementById("error").hidden = true;
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
  const response = await fetch("/v1/suggestions?include=explanation,comparables", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(listing),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) { showError(describeErrors(body)); return; }
  render(body);
});

document.getElementById("chosen").addEventListener("input", (event) => {
  text("chosen-value", money(event.target.value));
});

document.getElementById("accept").addEventListener("click", async () => {
  if (!requestId) return;
  const chosen = Number(document.getElementById("chosen").value);
  const response = await fetch("/v1/feedback", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ request_id: requestId, chosen_price: chosen }),
  });
  if (!response.ok) { showError(describeErrors(await response.json().catch(() => null))); return; }
  document.getElementById("accepted").hidden = false;
  document.getElementById("accept").disabled = true;
});
