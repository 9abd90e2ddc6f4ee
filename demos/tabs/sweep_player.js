// SweepPlayer's js_on_load (see sweep_player.py). Draws the sweep's setting under the learner's hand into the page's
// outputs, in the browser: no request while the gesture lasts. The sweep is read from props on each step, so a new
// sweep (a new picture, a sweep that grew) plays from the next step on.
const key = (values) => values.map((v) => Number(v).toFixed(props.decimals)).join(',');
let index = null, indexed = null;  // setting key -> position in the sweep, for the sweep it was built from
let sheet = null, sheetUrl = null;  // the sprite sheet, decoded once per sweep
const tiles = new Map();  // "setting/picture" -> PNG data URL

function settingIndex(values) {
  const sweep = props.sweep;
  if (!sweep || !sweep.settings) return -1;
  if (indexed !== sweep) {
    index = new Map(sweep.settings.map((values, i) => [key(values), i]));
    indexed = sweep;
  }
  const found = index.get(key(values));
  return found === undefined ? -1 : found;
}

function loadSheet() {
  const url = props.sweep && props.sweep.sprite;
  if (url === sheetUrl) return;
  sheetUrl = url;
  tiles.clear();
  sheet = null;
  if (!url) return;
  const image = new Image();
  image.onload = () => { if (sheetUrl === url) sheet = image; };
  image.src = url;
}

// One picture of one setting, cut from the sheet as a PNG data URL (kept: a drag back and forth decodes once).
function tile(i, slot) {
  const id = i + '/' + slot;
  if (tiles.has(id)) return tiles.get(id);
  const layout = props.sweep.layout, [w, h] = layout.tile;
  const row = Math.floor(i / layout.columns), column = i % layout.columns;
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d').drawImage(sheet, (column * layout.per_cell + slot) * w, row * h, w, h, 0, 0, w, h);
  const url = canvas.toDataURL('image/png');
  tiles.set(id, url);
  return url;
}

// The page's <img> for a selector: a gr.Image's own; for a gr.Video, a still laid over the video, which pauses while
// the hand moves and comes back (the still gone) when the server sends its new clip or the learner plays it.
function pictureOf(selector) {
  const video = document.querySelector(selector + ' video');
  if (!video) return document.querySelector(selector + ' img');
  video.pause();
  let still = video.parentElement.querySelector(':scope > img.sp-still');
  if (!still) {
    still = document.createElement('img');
    still.className = 'sp-still';
    still.style.cssText = 'position:absolute;inset:0;width:100%;height:100%;object-fit:contain;' +
                          'background:var(--block-background-fill);z-index:1;pointer-events:none';
    if (getComputedStyle(video.parentElement).position === 'static') video.parentElement.style.position = 'relative';
    video.parentElement.appendChild(still);
    const drop = () => still.remove();
    video.addEventListener('loadstart', drop, {once: true});
    video.addEventListener('play', drop, {once: true});
  }
  return still;
}

// The page's text for a selector: a copy laid in place of a gr.Markdown's rendered body, which is hidden meanwhile.
// Never written into: gradio renders markdown block by block and keeps the nodes of blocks that did not change, so
// a body rewritten here would lose text at the next update. The copy goes (the body back) when gradio changes it.
function textOf(selector) {
  const body = document.querySelector(selector + ' .prose:not(.sp-text)') || document.querySelector(selector);
  if (!body) return null;
  let shown = body.parentElement.querySelector(':scope > .sp-text');
  if (!shown) {
    // The body's element and its wrapper's (gradio styles tables and lists there), none of their content.
    shown = body.cloneNode(false);
    shown.classList.add('sp-text');
    shown.removeAttribute('id');
    shown.removeAttribute('data-testid');
    const wrapper = body.querySelector(':scope > .md');
    if (wrapper) shown.appendChild(wrapper.cloneNode(false));
    body.before(shown);
    const observer = new MutationObserver(() => {
      observer.disconnect();
      shown.remove();
      body.style.display = '';
    });
    observer.observe(body, {childList: true, subtree: true, characterData: true});
  }
  body.style.display = 'none';
  return shown.querySelector(':scope > .md') || shown;
}

// A setting the sweep does not hold (yet): the page's own result comes back rather than another setting's.
function letGo() {
  for (const selector of Object.values(props.pictures || {})) {
    document.querySelectorAll(selector + ' img.sp-still').forEach((still) => still.remove());
  }
  for (const selector of Object.values(props.texts || {})) {
    document.querySelectorAll(selector + ' .sp-text').forEach((shown) => {
      if (shown.nextElementSibling) shown.nextElementSibling.style.display = '';
      shown.remove();
    });
  }
  delete element.dataset.shown;
}

function show(values) {
  loadSheet();
  const i = settingIndex(values);
  if (i < 0) return letGo();
  const sweep = props.sweep;
  if (sheet) {
    sweep.pictures.forEach((name, slot) => {
      const img = pictureOf(props.pictures[name]);
      if (!img) return;
      img.src = tile(i, slot);
      const alt = sweep.alts && sweep.alts[name];
      if (alt) img.alt = alt[i];
    });
  }
  for (const [name, html] of Object.entries(sweep.texts || {})) {
    const target = props.texts[name] && textOf(props.texts[name]);
    if (target) target.innerHTML = html[i];
  }
  element.dataset.shown = key(values);  // which setting is on the page, for tests and for the curious
}

const inSource = (target) => target instanceof Element && target.closest('#' + CSS.escape(props.source));

if (props.kind === 'block') {
  // BlockPicker announces every block it draws (pointer and keys alike).
  document.addEventListener('block-drawn', (event) => {
    if (!inSource(event.target)) return;
    const b = event.detail;
    show([b.top, b.left, b.height, b.width]);
  });
} else {
  // A gr.Slider: its range input moves with the pointer and the arrow keys; its number box with typing.
  document.addEventListener('input', (event) => {
    if (!inSource(event.target) || event.target.tagName !== 'INPUT') return;
    const value = parseFloat(event.target.value);
    if (Number.isFinite(value)) show([value]);
  }, true);
}
watch('sweep', loadSheet);  // a new sweep from the server: decode its sheet before the hand needs it
loadSheet();
