// The leaders' app: pair the phone, list the open alert groups, acknowledge, get pushes.
// Plain JavaScript, no framework, no build step; every byte comes from the dispatcher.
'use strict';

const T = {
  ar: {
    app_name: 'تنبيهات الإنقاذ', other_lang: 'English',
    pair_title: 'ربط هذا الهاتف',
    pair_help: 'أدخل الرمز المؤلف من 8 أحرف الذي أعطاك إياه المكتب، أو امسح رمز QR.',
    code_label: 'رمز الربط', pair_button: 'ربط الهاتف',
    have_key: 'لديّ مفتاح جهاز', key_label: 'مفتاح الجهاز', key_button: 'استخدام المفتاح',
    bad_code: 'الرمز غير صحيح أو انتهت صلاحيته أو استُخدم. اطلب رمزاً جديداً.',
    short_code: 'الرمز 8 أحرف.', bad_key: 'المفتاح غير معروف.',
    too_many: 'محاولات كثيرة. حاول بعد {n} ثانية.',
    no_link: 'لا اتصال بالخادم. حاول مرة أخرى.',
    refresh: 'تحديث', enable_notifications: 'تفعيل التنبيهات', notifications_on: 'التنبيهات مفعّلة',
    no_groups: 'لا توجد تنبيهات مفتوحة لفريقك.',
    updated: 'آخر تحديث: {t}',
    offline: 'غير متصل: هذه آخر حالة محفوظة ({t}).',
    killed: 'قتلى', injured: 'جرحى', trapped: 'عالقون', rescued: 'أُنقذوا',
    ranges: 'مصادر أخرى:', up_to: 'حتى {n}',
    incidents: 'الحوادث ({n})', incidents_more: 'آخر {n} من {m}',
    acks: 'من استلم', no_acks: 'لم يستلمه أحد بعد.',
    acked: 'استلم', responding: 'يستجيب', you: 'أنت',
    ack: 'استلمت', respond: 'نستجيب', note: 'ملاحظة (اختياري)',
    sent_ack: 'أُرسل: استلمت.', sent_respond: 'أُرسل: نستجيب.',
    closed: 'أُغلق هذا التنبيه، لم يُسجَّل شيء.', not_sent: 'لم يُرسل: لا اتصال. حاول مرة أخرى.',
    escalated: 'تصعيد', waiting: 'لم يصل تحديث بعد.',
    confirmed: 'مؤكد', retracted: 'مسحوب',
    push_unsupported: 'هذا المتصفح لا يدعم التنبيهات. على آيفون: أضف التطبيق إلى الشاشة الرئيسية ثم افتحه منها.',
    push_denied: 'التنبيهات محظورة. فعّلها من إعدادات المتصفح.',
    push_unavailable: 'الخادم لا يرسل تنبيهات الويب بعد.',
    push_failed: 'تعذّر تفعيل التنبيهات: {e}', push_on: 'التنبيهات مفعّلة على هذا الهاتف.',
    key_revoked: 'أُلغي ربط هذا الهاتف. اطلب رمزاً جديداً.',
    unpair: 'إلغاء ربط هذا الهاتف', unpair_confirm: 'إلغاء ربط هذا الهاتف؟ لن تصله التنبيهات.',
    kinds: {
      airstrike: 'غارة جوية', shelling: 'قصف مدفعي', barrel_bomb: 'برميل متفجر', missile: 'صاروخ',
      explosion: 'انفجار', building_collapse: 'انهيار مبنى', fire: 'حريق',
      chemical: 'هجوم كيميائي', other: 'حادث آخر',
    },
  },
  en: {
    app_name: 'Rescue alerts', other_lang: 'عربي',
    pair_title: 'Pair this phone',
    pair_help: 'Enter the 8-character code the desk gave you, or scan its QR code.',
    code_label: 'Pairing code', pair_button: 'Pair phone',
    have_key: 'I have a device key', key_label: 'Device key', key_button: 'Use the key',
    bad_code: 'The code is wrong, expired or already used. Ask for a new one.',
    short_code: 'The code has 8 characters.', bad_key: 'Unknown key.',
    too_many: 'Too many tries. Try again in {n} s.',
    no_link: 'No connection to the server. Try again.',
    refresh: 'Refresh', enable_notifications: 'Enable alerts', notifications_on: 'Alerts are on',
    no_groups: 'No open alerts for your team.',
    updated: 'Updated {t}',
    offline: 'Offline: this is the last saved state ({t}).',
    killed: 'killed', injured: 'injured', trapped: 'trapped', rescued: 'rescued',
    ranges: 'Others report:', up_to: 'up to {n}',
    incidents: 'Incidents ({n})', incidents_more: 'latest {n} of {m}',
    acks: 'Acknowledged by', no_acks: 'Nobody has acknowledged yet.',
    acked: 'acknowledged', responding: 'responding', you: 'you',
    ack: 'Acknowledge', respond: 'Responding', note: 'Note (optional)',
    sent_ack: 'Sent: acknowledged.', sent_respond: 'Sent: responding.',
    closed: 'This alert has closed; nothing was recorded.',
    not_sent: 'Not sent: no connection. Try again.',
    escalated: 'escalated', waiting: 'No update yet.',
    confirmed: 'confirmed', retracted: 'retracted',
    push_unsupported: 'This browser cannot show alerts. On iPhone: add the app to the Home Screen and open it from there.',
    push_denied: 'Alerts are blocked. Allow them in the browser settings.',
    push_unavailable: 'The server does not send web alerts yet.',
    push_failed: 'Could not turn alerts on: {e}', push_on: 'Alerts are on for this phone.',
    key_revoked: 'This phone was unpaired. Ask for a new code.',
    unpair: 'Unpair this phone', unpair_confirm: 'Unpair this phone? It will get no alerts.',
    kinds: {
      airstrike: 'airstrike', shelling: 'shelling', barrel_bomb: 'barrel bomb', missile: 'missile',
      explosion: 'explosion', building_collapse: 'building collapse', fire: 'fire',
      chemical: 'chemical attack', other: 'other',
    },
  },
};
const FIELDS = ['killed', 'injured', 'trapped', 'rescued'];
const $ = (id) => document.getElementById(id);

let lang = localStorage.getItem('lang') === 'en' ? 'en' : 'ar';
const state = { key: null, leader: null, me: null, groups: null, at: null, offline: false, push: null };

function t(name, vars) {
  let s = T[lang][name] || T.en[name] || name;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace('{' + k + '}', v);
  return s;
}
const num = (n) => Number(n || 0).toLocaleString(lang === 'ar' ? 'ar-u-nu-latn' : 'en');
function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const today = d.toDateString() === new Date().toDateString();
  const opts = today ? { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
    : { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  return d.toLocaleString(lang === 'ar' ? 'ar-u-nu-latn' : 'en-GB', opts);
}

// A tiny element builder: h('p', {class: 'x'}, 'text', child...). Text only, never HTML.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) {
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

// --- storage: IndexedDB, which the service worker reads too (the key, the language) -----
function db() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('dispatcher', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('kv');
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}
async function kv(mode, fn) {
  const conn = await db();
  return new Promise((resolve, reject) => {
    const tx = conn.transaction('kv', mode);
    const req = fn(tx.objectStore('kv'));
    tx.oncomplete = () => { conn.close(); resolve(req.result); };
    tx.onerror = () => { conn.close(); reject(tx.error); };
  });
}
const load = (k) => kv('readonly', (s) => s.get(k));
const save = (k, v) => kv('readwrite', (s) => s.put(v, k));
const drop = (k) => kv('readwrite', (s) => s.delete(k));

// --- the API ---------------------------------------------------------------------------
async function api(path, opts) {
  const { method = 'GET', body, auth = true } = opts || {};
  const headers = {};
  if (auth) headers.Authorization = 'Bearer ' + state.key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  // A poor link may stall rather than fail: give up after 20 s and show the last state.
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 20000);
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, cache: 'no-store', signal: stop.signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  return { status: resp.status, ok: resp.ok, data, headers: resp.headers };
}

// --- showing ---------------------------------------------------------------------------
function applyLang() {
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === 'ar' ? 'rtl' : 'ltr';
  document.title = t('app_name');
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  $('lang').textContent = t('other_lang');
  $('lang').lang = lang === 'ar' ? 'en' : 'ar';
  $('code').placeholder = 'ABCD-2345';
}

let toastTimer = null;
function toast(text) {
  const el = $('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

function show(which) {
  $('pair').hidden = which !== 'pair';
  $('home').hidden = which !== 'home';
  $('bar').hidden = which !== 'home';
}

function rangeText(v) {
  const high = v && typeof v === 'object' ? (v.high ?? v.max) : v;
  return t('up_to', { n: num(high) });
}

function groupCard(g) {
  const latest = g.latest;
  const totals = (latest && latest.totals) || {};
  const note = h('input', { class: 'note', maxlength: '500', 'aria-label': t('note'), placeholder: t('note') });
  const send = (responding) => (ev) => acknowledge(g, responding, note.value.trim(), ev.currentTarget);
  const ranges = latest && latest.ranges ? Object.entries(latest.ranges) : [];
  const shown = g.incidents || [];
  return h('article', { class: 'group' + (g.acked_by_me ? ' acked' : ''), id: 'g-' + g.id, 'data-group': g.id },
    h('header', null,
      h('h3', null, (latest && latest.title) || g.receiver_name),
      h('p', { class: 'muted' }, when(g.last_report_at || g.opened_at),
        g.escalated ? ' · ' + t('escalated') : '')),
    latest ? h('p', { class: 'body' }, latest.body) : h('p', { class: 'muted' }, t('waiting')),
    latest ? h('dl', { class: 'totals' }, FIELDS.map((f) => h('div', { class: 'total ' + f },
      h('dd', null, num(totals[f])), h('dt', null, t(f))))) : null,
    ranges.length ? h('p', { class: 'ranges' }, t('ranges') + ' ',
      ranges.map(([f, v]) => t(f) + ' ' + rangeText(v)).join(' · ')) : null,
    h('details', { class: 'incidents' },
      h('summary', null, t('incidents', { n: num(g.incidents_total ?? shown.length) }),
        shown.length < (g.incidents_total || 0)
          ? ' · ' + t('incidents_more', { n: num(shown.length), m: num(g.incidents_total) }) : ''),
      h('ul', null, shown.map((i) => h('li', { class: 'incident' },
        h('strong', null, T[lang].kinds[i.kind] || i.kind), ' · ', i.region_name, ' · ', when(i.occurred_at),
        i.confirmed ? ' · ' + t('confirmed') : '', i.retracted ? ' · ' + t('retracted') : '',
        h('br'),
        FIELDS.filter((f) => i.casualties[f] || (i.ranges && i.ranges[f]))
          .map((f) => t(f) + ' ' + num(i.casualties[f])
            + (i.ranges && i.ranges[f] ? ' (' + t('ranges') + ' ' + rangeText(i.ranges[f]) + ')' : ''))
          .join(' · '))))),
    h('div', { class: 'acks' },
      h('h4', null, t('acks')),
      g.acks.length
        ? h('ul', null, g.acks.map((a) => h('li', { class: a.responding ? 'responding' : 'acked' },
          h('strong', null, a.name || a.leader), a.leader === state.me ? ' (' + t('you') + ')' : '',
          ' · ', t(a.responding ? 'responding' : 'acked'), ' · ', when(a.at),
          a.note ? h('q', null, a.note) : null)))
        : h('p', { class: 'muted' }, t('no_acks'))),
    h('div', { class: 'act' }, note,
      h('div', { class: 'buttons' },
        h('button', { class: 'big ack', type: 'button', onclick: send(false) }, t('ack')),
        h('button', { class: 'big primary respond', type: 'button', onclick: send(true) }, t('respond')))));
}

function render() {
  const leader = state.leader;
  $('who').textContent = leader ? leader.name + (leader.team_name ? ' · ' + leader.team_name : '') : '';
  $('updated').textContent = state.at ? t('updated', { t: when(state.at) }) : '';
  const banner = $('banner');
  banner.hidden = !state.offline;
  banner.textContent = state.offline ? t('offline', { t: when(state.at) || '—' }) : '';
  const list = $('groups');
  const groups = state.groups || [];
  // A refresh must not lose a note being typed, or an incident list left open.
  const kept = {};
  for (const card of list.querySelectorAll('.group')) {
    const note = card.querySelector('.note');
    kept[card.dataset.group] = {
      note: note.value, focused: document.activeElement === note,
      open: card.querySelector('details.incidents').open,
    };
  }
  list.replaceChildren(...groups.map(groupCard));
  for (const card of list.querySelectorAll('.group')) {
    const was = kept[card.dataset.group];
    if (!was) continue;
    const note = card.querySelector('.note');
    note.value = was.note;
    card.querySelector('details.incidents').open = was.open;
    if (was.focused) note.focus();
  }
  $('empty').hidden = !state.groups || groups.length > 0;
  const notify = $('notify');
  notify.textContent = t(state.push ? 'notifications_on' : 'enable_notifications');
  notify.classList.toggle('on', Boolean(state.push));
  focusLinked();
}

let scrolledTo = null; // the link scrolled to once: a refresh must not scroll again
function focusLinked() {
  const m = /group=([\w-]+)/.exec(location.hash);
  const el = m && document.getElementById('g-' + m[1]);
  if (!el) return;
  el.classList.add('focus');
  if (scrolledTo !== location.hash) {
    scrolledTo = location.hash;
    el.scrollIntoView({ block: 'start' });
  }
}

// --- what the leader does --------------------------------------------------------------
async function refresh() {
  if (!state.key) return;
  try {
    const r = await api('/v1/me/groups?locale=' + lang);
    if (r.status === 401) { await forget(t('key_revoked')); return; }
    if (r.status >= 500) throw new Error('HTTP ' + r.status); // down, or its proxy says so
    if (!r.ok) {
      // The service answered but refused (say, a key not bound to a leader): not offline.
      toast((r.data && (r.data.detail || r.data.title)) || 'HTTP ' + r.status);
      state.offline = false;
      render();
      return;
    }
    state.groups = r.data.groups;
    state.me = r.data.leader;
    state.at = new Date().toISOString();
    state.offline = false;
    await save('groups', { groups: state.groups, me: state.me, at: state.at, lang });
  } catch (e) {
    state.offline = true;
  }
  render();
}

async function paired(key, leader) {
  state.key = key;
  state.leader = leader;
  await save('key', key);
  await save('leader', leader);
  if (/pair=/.test(location.hash)) history.replaceState(null, '', '/app/');
  show('home');
  await refresh();
}

async function pair(ev) {
  ev.preventDefault();
  const err = $('pair-error');
  err.hidden = true;
  const code = $('code').value.toUpperCase().replace(/[\s-]/g, '');
  const fail = (text) => { err.textContent = text; err.hidden = false; };
  if (code.length !== 8) return fail(t('short_code'));
  try {
    const r = await api('/v1/pairings/redeem', { method: 'POST', auth: false, body: { code } });
    if (r.status === 201) return paired(r.data.key, r.data.leader);
    if (r.status === 429) return fail(t('too_many', { n: r.headers.get('Retry-After') || '60' }));
    return fail(t('bad_code'));
  } catch (e) {
    return fail(t('no_link'));
  }
}

async function useKey(ev) {
  ev.preventDefault();
  const err = $('pair-error');
  err.hidden = true;
  state.key = $('key').value.trim();
  try {
    const me = await api('/v1/me');
    const probe = me.ok ? me : await api('/v1/me/groups');
    if (!probe.ok) { state.key = null; err.textContent = t('bad_key'); err.hidden = false; return; }
    await paired(state.key, me.ok ? me.data.leader : null);
  } catch (e) {
    state.key = null;
    err.textContent = t('no_link');
    err.hidden = false;
  }
}

async function acknowledge(g, responding, note, button) {
  const body = note ? { responding, note } : { responding };
  button.disabled = true;
  try {
    const r = await api('/v1/groups/' + encodeURIComponent(g.id) + '/ack', { method: 'POST', body });
    if (r.status === 201) {
      const card = document.getElementById('g-' + g.id);
      if (card) card.querySelector('.note').value = '';
      toast(t(responding ? 'sent_respond' : 'sent_ack'));
      await refresh();
    } else if (r.status === 409) toast(t('closed'));
    else toast((r.data && (r.data.detail || r.data.title)) || 'HTTP ' + r.status);
  } catch (e) {
    toast(t('not_sent'));
  } finally {
    button.disabled = false;
  }
}

function vapidKey(text) {
  const b64 = (text + '='.repeat((4 - (text.length % 4)) % 4)).replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function registerPush(sub) {
  const r = await api('/v1/devices', {
    method: 'POST', body: { platform: 'web', locale: lang, subscription: sub.toJSON() },
  });
  if (!r.ok) throw new Error((r.data && (r.data.detail || r.data.title)) || 'HTTP ' + r.status);
  state.push = { endpoint: sub.endpoint, locale: lang };
  await save('push', state.push);
}

async function enableNotifications() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) {
    toast(t('push_unsupported'));
    return;
  }
  try {
    if ((await Notification.requestPermission()) !== 'granted') { toast(t('push_denied')); return; }
    const reg = await navigator.serviceWorker.ready;
    const vapid = await api('/v1/webpush/vapid', { auth: false });
    if (!vapid.ok) { toast(t('push_unavailable')); return; }
    const key = vapidKey(vapid.data.public_key);
    let sub = await reg.pushManager.getSubscription();
    if (sub) {
      const held = sub.options.applicationServerKey;
      const same = held && new Uint8Array(held).every((b, i) => b === key[i]);
      if (!same) { await sub.unsubscribe(); sub = null; }
    }
    if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    await registerPush(sub);
    toast(t('push_on'));
  } catch (e) {
    toast(t('push_failed', { e: e.message || String(e) }));
  }
  render();
}

async function forget(why) {
  for (const k of ['key', 'leader', 'groups', 'push']) await drop(k);
  Object.assign(state, { key: null, leader: null, me: null, groups: null, at: null, offline: false, push: null });
  show('pair');
  render();
  if (why) { $('pair-error').textContent = why; $('pair-error').hidden = false; }
}

async function unpair() {
  if (!confirm(t('unpair_confirm'))) return;
  try {
    if (state.push) await api('/v1/devices', { method: 'DELETE', body: { endpoint: state.push.endpoint } });
    const reg = await navigator.serviceWorker?.getRegistration('/app/');
    const sub = reg && await reg.pushManager.getSubscription();
    if (sub) await sub.unsubscribe();
  } catch (e) { /* offline: the key can still be revoked at the desk */ }
  await forget(null);
}

async function switchLang() {
  lang = lang === 'ar' ? 'en' : 'ar';
  localStorage.setItem('lang', lang);
  await save('lang', lang);
  $('toast').hidden = true;
  applyLang();
  render();
  if (state.push && state.push.locale !== lang && 'serviceWorker' in navigator) {
    // Pushes come rendered in the phone's language: tell the server the new one.
    try {
      const reg = await navigator.serviceWorker.ready;
      const sub = await reg.pushManager.getSubscription();
      if (sub) await registerPush(sub);
    } catch (e) { /* kept for the next time */ }
  }
  await refresh();
}

async function start() {
  applyLang();
  $('lang').addEventListener('click', switchLang);
  $('pair-form').addEventListener('submit', pair);
  $('key-form').addEventListener('submit', useKey);
  $('refresh').addEventListener('click', refresh);
  $('notify').addEventListener('click', enableNotifications);
  $('unpair').addEventListener('click', unpair);
  window.addEventListener('hashchange', () => { scrolledTo = null; render(); });
  window.addEventListener('online', refresh);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
  setInterval(() => { if (!document.hidden) refresh(); }, 60000);
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' }).catch(() => {});
    navigator.serviceWorker.addEventListener('message', (ev) => {
      if (ev.data && ev.data.type === 'open') location.hash = new URL(ev.data.url).hash;
      refresh();
    });
  }
  await save('lang', lang);
  state.key = await load('key');
  state.leader = (await load('leader')) || null;
  state.push = (await load('push')) || null;
  const code = /pair=([\w-]+)/.exec(location.hash);
  if (code) $('code').value = code[1].toUpperCase();
  if (!state.key) {
    show('pair');
    render();
    return;
  }
  const cached = await load('groups');
  if (cached) Object.assign(state, { groups: cached.groups, me: cached.me, at: cached.at });
  show('home');
  render();
  await refresh();
}

start();
