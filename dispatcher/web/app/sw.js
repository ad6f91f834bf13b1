// The leaders' app's service worker: keeps the app shell for offline and later opens,
// shows pushed alerts, and opens the alert group a notification names.
'use strict';

const VERSION = '__APP_VERSION__'; // replaced by a digest of the app's files when served
const CACHE = 'dispatcher-app-' + VERSION;
const SHELL = [
  '/app/', '/app/app.css?v=' + VERSION, '/app/app.js?v=' + VERSION,
  '/app/manifest.webmanifest', '/app/icons/icon-192.png', '/app/icons/badge-96.png',
];
const NEUTRAL = {
  ar: { title: 'تنبيه جديد', body: 'افتح التطبيق لقراءته.' },
  en: { title: 'New alert', body: 'Open the app to read it.' },
};

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('dispatcher-app-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || !url.pathname.startsWith('/app/')) {
    return; // the API goes to the network; the page keeps its last answer itself
  }
  const page = req.mode === 'navigate' && (url.pathname === '/app/' || url.pathname === '/app/index.html');
  event.respondWith((async () => {
    const hit = await caches.match(page ? '/app/' : req, { cacheName: CACHE });
    return hit || fetch(req);
  })());
});

// The device key and the language, which the page keeps in IndexedDB.
function stored(name) {
  return new Promise((resolve) => {
    const open = indexedDB.open('dispatcher', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('kv');
    open.onerror = () => resolve(undefined);
    open.onsuccess = () => {
      const conn = open.result;
      const req = conn.transaction('kv', 'readonly').objectStore('kv').get(name);
      req.onsuccess = () => { conn.close(); resolve(req.result); };
      req.onerror = () => { conn.close(); resolve(undefined); };
    };
  });
}

async function onPush(event) {
  let msg = {};
  try { msg = event.data ? event.data.json() : {}; } catch (e) { msg = { body: event.data.text() }; }
  const lang = (await stored('lang')) === 'en' ? 'en' : 'ar';
  let { title, body } = msg;
  if ((msg.minimal || !title) && msg.group_id && msg.seq != null) {
    // A `payload: minimal` route: the push names the update, the app fetches its text.
    try {
      const key = await stored('key');
      const resp = await fetch('/v1/groups/' + encodeURIComponent(msg.group_id) + '/updates/'
        + encodeURIComponent(msg.seq) + '?locale=' + lang, { headers: { Authorization: 'Bearer ' + key } });
      if (resp.ok) ({ title, body } = await resp.json());
    } catch (e) { /* shown neutral below */ }
  }
  if (!title) ({ title, body } = NEUTRAL[lang]);
  const url = msg.url || (msg.group_id ? '/app/#group=' + msg.group_id : '/app/');
  await self.registration.showNotification(title, {
    body: body || '', tag: msg.group_id || 'dispatcher', renotify: true,
    dir: lang === 'ar' ? 'rtl' : 'ltr', lang,
    icon: '/app/icons/icon-192.png', badge: '/app/icons/badge-96.png',
    data: { url, group_id: msg.group_id || null, seq: msg.seq || null },
  });
  for (const client of await self.clients.matchAll({ type: 'window' })) {
    client.postMessage({ type: 'push', group_id: msg.group_id || null });
  }
}

self.addEventListener('push', (event) => event.waitUntil(onPush(event)));

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = new URL((event.notification.data && event.notification.data.url) || '/app/', self.location.origin).href;
  event.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const client of open) {
      if (new URL(client.url).pathname.startsWith('/app/')) {
        await client.focus();
        client.postMessage({ type: 'open', url });
        return;
      }
    }
    await self.clients.openWindow(url);
  })());
});

// The push service replaced the subscription: register the new one with the same key.
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil((async () => {
    const key = await stored('key');
    const options = event.oldSubscription && event.oldSubscription.options;
    const sub = event.newSubscription || (options && await self.registration.pushManager.subscribe(options));
    if (!key || !sub) return;
    await fetch('/v1/devices', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        platform: 'web', locale: (await stored('lang')) || 'ar', subscription: sub.toJSON(),
        ...(event.oldSubscription ? { replaces: event.oldSubscription.endpoint } : {}),
      }),
    });
  })());
});
