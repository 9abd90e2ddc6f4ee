// BlockPicker's js_on_load: runs once per picker in the browser. gradio re-renders `element`'s content from
// `props` whenever a prop changes (it patches the DOM in place), so the listeners hang on `element` itself and
// find the picture on each event. The block moves by setting `props.value`: gradio redraws it at once, keeps
// the new value for the next event, and nothing reaches the server until the gesture ends.
const clamp = (x, low, high) => Math.min(Math.max(x, low), high);

// Kept inside the grid: at least 1x1, whole patches (block_picker.html draws the value so, and Python's _fit
// reads it so).
function fit(b) {
  const height = clamp(Math.round(b.height), 1, props.rows), width = clamp(Math.round(b.width), 1, props.cols);
  return {top: clamp(Math.round(b.top), 0, props.rows - height), left: clamp(Math.round(b.left), 0, props.cols - width),
          height, width};
}

// The block as drawn. Python may send a new grid without a block, and gradio applies an update one prop at a
// time (the grid, then the value), so props.value may lie outside the grid for a while: it is fitted where it is
// read, never rewritten in answer to Python. A rewrite there (a `watch` on the grid) would land between the two
// steps and overwrite the value still on its way.
const block = () => fit(props.value);

function place(b) {
  b = fit(b);
  const old = props.value || {};
  if (b.top !== old.top || b.left !== old.left || b.height !== old.height || b.width !== old.width) {
    props.value = b;
    // Announced in the page (a SweepPlayer plays the setting back at once), never sent to the server.
    element.dispatchEvent(new CustomEvent('block-drawn', {bubbles: true, detail: b}));
  }
}

// Where the pointer is, in patches (fractions included), from the picture's top-left corner.
function at(event) {
  const box = element.querySelector('.bp-picture').getBoundingClientRect();
  return [(event.clientY - box.top) / box.height * props.rows, (event.clientX - box.left) / box.width * props.cols];
}

let gesture = null;  // the pointer being followed: {id, resize, dy, dx, start}

element.addEventListener('pointerdown', (event) => {
  const picture = event.target.closest('.bp-picture');
  if (!picture || gesture || !event.isPrimary || event.button !== 0) return;
  // No preventDefault: the press focuses the picture as any press does (no focus ring for a mouse); the CSS
  // already stops text selection, image dragging and touch scrolling.
  picture.setPointerCapture(event.pointerId);  // keep the moves coming when the pointer leaves the picture
  const start = JSON.stringify(fit(block())), [y, x] = at(event);
  let b = block();
  const inside = y >= b.top && y < b.top + b.height && x >= b.left && x < b.left + b.width;
  if (!inside && !event.target.closest('.bp-handle')) {
    place({...b, top: y - b.height / 2, left: x - b.width / 2});  // a press elsewhere centres the block there
    b = block();
  }
  gesture = {id: event.pointerId, resize: !!event.target.closest('.bp-handle'), dy: y - b.top, dx: x - b.left, start};
});

element.addEventListener('pointermove', (event) => {
  if (!gesture || event.pointerId !== gesture.id) return;
  const [y, x] = at(event), b = block();
  if (gesture.resize) {  // the top-left corner stays; the patch under the pointer becomes the last row and column
    place({...b, height: clamp(Math.floor(y) - b.top + 1, 1, props.rows - b.top),
           width: clamp(Math.floor(x) - b.left + 1, 1, props.cols - b.left)});
  } else {  // the block keeps the spot where it was grabbed under the pointer
    place({...b, top: y - gesture.dy, left: x - gesture.dx});
  }
});

// One event per gesture, on release, and only when the block changed: the page runs its model once.
function finish(event) {
  if (!gesture || event.pointerId !== gesture.id) return;
  const changed = JSON.stringify(fit(block())) !== gesture.start;
  gesture = null;
  if (changed) trigger('release', block());
}
element.addEventListener('pointerup', finish);
element.addEventListener('pointercancel', finish);
element.addEventListener('lostpointercapture', finish);

// Arrows move the block a patch, Shift+arrows resize it (Right and Down grow it), Enter asks the page to run.
// Arrows only change the value, which the next run reads: no model runs per key press.
const STEPS = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
element.addEventListener('keydown', (event) => {
  if (!event.target.closest('.bp-picture') || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key === 'Enter') {
    event.preventDefault();
    if (!event.repeat) trigger('submit', block());
    return;
  }
  const step = STEPS[event.key];
  if (!step) return;
  event.preventDefault();  // the page does not scroll
  const b = block();
  if (event.shiftKey) {
    place({...b, height: clamp(b.height + step[0], 1, props.rows - b.top),
           width: clamp(b.width + step[1], 1, props.cols - b.left)});
  } else {
    place({...b, top: b.top + step[0], left: b.left + step[1]});
  }
});
