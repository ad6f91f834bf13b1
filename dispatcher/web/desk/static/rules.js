// Rules: reload them from the files (admin).
"use strict";
document.getElementById("reload")?.addEventListener("click", async () => {
  const res = await deskCall("POST", "/desk/api/rules/reload");
  const out = document.getElementById("reload-result");
  if (res.ok) { location.reload(); return; }
  out.textContent = problemText(res.data);
  out.className = "error";
});
