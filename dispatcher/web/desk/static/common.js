// The desk's shared bits: JSON calls with the session's CSRF token, times in local time.
"use strict";
const CSRF = document.querySelector('meta[name="csrf-token"]').content;

async function deskCall(method, url, body) {
  const init = { method, headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401) { location.href = "/desk/login"; }
  return { ok: response.ok, status: response.status, data };
}

function problemText(data) {
  if (!data) return "error";
  const errors = (data.errors || []).map((e) => `${e.field}: ${e.message}`);
  return [data.title, data.detail, ...errors].filter(Boolean).join(" — ");
}

function localTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString(document.documentElement.lang === "ar" ? "ar-SY-u-nu-latn" : "en-GB",
    { hour: "2-digit", minute: "2-digit", day: "numeric", month: "short" });
}

function deskTimes(root) {
  (root || document).querySelectorAll("time[datetime]").forEach((el) => {
    const iso = el.getAttribute("datetime");
    if (iso && iso !== "None") { el.textContent = localTime(iso); el.title = iso; }
  });
}

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

document.getElementById("sign-out")?.addEventListener("click", async () => {
  await deskCall("POST", "/desk/logout");
  location.href = "/desk/login";
});
