/**
 * The dashboard's one stylesheet and one script, served from memory at `/assets/…` (no build step, no files to find at
 * run time). The script is the whole of the pages' JavaScript: it opens the live region's event stream and swaps in the
 * markup each event carries (rendered and escaped on the server), so a page follows its run without a reload.
 */

export const LIVE_SCRIPT = `'use strict';
(function () {
  var live = document.getElementById('live');
  if (!live || !live.dataset.events || typeof EventSource === 'undefined') return;
  var source = new EventSource(live.dataset.events);
  source.addEventListener('update', function (event) {
    live.innerHTML = event.data;
    live.dataset.updates = String(Number(live.dataset.updates || '0') + 1);
  });
  source.addEventListener('gone', function () {
    source.close();
    live.insertAdjacentHTML('afterbegin', '<p class="notice notice-error">This run is no longer in the ledger.</p>');
  });
  window.addEventListener('pagehide', function () { source.close(); });
})();
`;

export const STYLESHEET = `
:root { --ok:#2f8f4e; --bad:#c0392b; --flag:#d68910; --run:#2e86c1; --park:#8e44ad; --wait:#c8ccd2; --cancel:#7f8c8d;
  --ink:#1d232b; --muted:#66707c; --line:#e1e4e8; --bg:#f7f8fa; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin:0; background:var(--bg); color:var(--ink); }
.top { display:flex; gap:1.5rem; align-items:center; padding:.7rem 1.5rem; background:#151a21; color:#fff; }
.top a { color:#fff; text-decoration:none; } .top nav a { margin-right:1rem; opacity:.85; } .top nav a[aria-current] { opacity:1; font-weight:600; }
.brand { font-weight:700; letter-spacing:.04em; }
.mode { margin-left:auto; font-size:.8rem; padding:.15rem .5rem; border:1px solid #59636e; border-radius:1rem; }
.mode-actions { border-color:var(--flag); color:#ffd27a; }
main { max-width:1100px; margin:0 auto; padding:1rem 1.5rem 3rem; }
h1 small { font-weight:400; font-size:.9rem; } h2 { font-size:1.05rem; margin:1.4rem 0 .6rem; }
.muted { color:var(--muted); } .empty { padding:2rem; background:#fff; border:1px dashed var(--line); }
.run { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.9rem 1.1rem; margin:.8rem 0; }
.run-head { display:flex; flex-wrap:wrap; gap:.6rem; align-items:baseline; } .run-head h2 { margin:0; font-size:1.1rem; }
.run-head .muted { margin-left:auto; font-size:.85rem; }
.state { font-size:.78rem; padding:.1rem .5rem; border-radius:1rem; background:#e8f5ec; color:var(--ok); text-transform:uppercase; letter-spacing:.05em; }
.state-paused { background:#f6eefb; color:var(--park); } .state-canceled { background:#eef0f1; color:var(--cancel); }
.progress { display:flex; height:14px; background:var(--wait); border-radius:7px; overflow:hidden; margin:.7rem 0 .4rem; }
.seg { display:block; height:100%; transition:width .4s ease; }
.seg-succeeded { background:var(--ok); } .seg-failed { background:var(--bad); } .seg-flagged { background:var(--flag); }
.seg-canceled { background:var(--cancel); } .seg-running { background:var(--run); } .seg-parked { background:var(--park); } .seg-waiting { background:var(--wait); }
.figures { margin:.3rem 0; font-variant-numeric:tabular-nums; }
.counts { display:flex; flex-wrap:wrap; gap:.4rem 1.2rem; margin:.4rem 0 0; font-size:.88rem; }
.counts div { display:flex; gap:.35rem; } .counts dt { color:var(--muted); } .counts dd { margin:0; font-weight:600; font-variant-numeric:tabular-nums; }
.pause-note { background:#f6eefb; padding:.4rem .6rem; border-radius:4px; }
.notice { padding:.6rem .8rem; border-radius:6px; background:#e8f5ec; border:1px solid #b9dfc5; }
.notice-error { background:#fdecea; border-color:#f5c2bd; }
table.failures { border-collapse:collapse; width:100%; background:#fff; font-size:.9rem; }
.failures th, .failures td { text-align:left; padding:.35rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
.failures .num { text-align:right; } .failures .example { color:var(--muted); word-break:break-word; }
.chart { margin:0; background:#fff; border:1px solid var(--line); border-radius:8px; padding:.6rem; }
.chart svg { width:100%; height:auto; } .chart .bar { fill:var(--run); } .chart .axis, .chart .grid { stroke:#c5cad1; }
.chart .grid { stroke-dasharray:3 3; } .chart .tick { font-size:11px; fill:var(--muted); }
.chart figcaption { font-size:.8rem; color:var(--muted); }
.gallery { display:grid; grid-template-columns:repeat(auto-fill, minmax(330px, 1fr)); gap:.8rem; }
.output { margin:0; background:#fff; border:1px solid var(--line); border-radius:8px; padding:.5rem; }
.pair { display:flex; gap:.3rem; } .pair img { width:50%; height:auto; background:#eee; border-radius:4px; }
.output figcaption { font-size:.82rem; margin-top:.3rem; }
.actions { display:flex; flex-wrap:wrap; gap:.6rem 1rem; align-items:center; background:#fff; border:1px solid var(--line); border-radius:8px; padding:.7rem 1rem; }
.actions form { margin:0; } .actions .danger { margin-left:auto; } .actions .danger button { background:var(--bad); color:#fff; border-color:var(--bad); }
button { font:inherit; padding:.3rem .8rem; border-radius:5px; border:1px solid #aab2bc; background:#fff; cursor:pointer; }
input { font:inherit; padding:.25rem .4rem; }
`;
