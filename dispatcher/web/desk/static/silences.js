// Silences: preview the groups a silence would hold, save it, expire one early.
"use strict";
(function () {
  const form = document.getElementById("silence-form");
  function body() {
    const pick = (name) => [...form.elements[name].selectedOptions].map((o) => o.value);
    return {
      matchers: { regions: pick("regions"), receivers: pick("receivers"), routes: pick("routes"), kinds: pick("kinds") },
      duration: form.elements.duration.value.trim(),
      reason: form.elements.reason.value.trim(),
    };
  }
  function showError(data) {
    const el = document.getElementById("silence-error");
    el.textContent = problemText(data);
    el.hidden = false;
  }
  if (form) {
    document.getElementById("preview").addEventListener("click", async () => {
      const res = await deskCall("POST", "/desk/api/silences/preview", body());
      if (!res.ok) return showError(res.data);
      document.getElementById("silence-error").hidden = true;
      const list = document.getElementById("preview-groups");
      list.innerHTML = res.data.groups.map((g) =>
        `<li data-group="${esc(g.id)}">${esc(g.receiver_name)} · <code>${esc(g.route)}</code> · ${esc(Object.entries(g.labels).map((p) => p.join("=")).join(", "))} · ${g.reports}</li>`
      ).join("") || `<li class="muted">—</li>`;
      document.getElementById("preview-result").hidden = false;
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const res = await deskCall("POST", "/desk/api/silences", body());
      if (!res.ok) return showError(res.data);
      location.reload();
    });
  }
  document.querySelectorAll("button.expire").forEach((b) => b.addEventListener("click", async () => {
    const res = await deskCall("DELETE", "/desk/api/silences/" + encodeURIComponent(b.dataset.id));
    if (res.ok) location.reload();
  }));
})();
