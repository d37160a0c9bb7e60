"use strict";
// The image viewers of dip's pages, shared by the report (inlined) and `dip serve` (served):
// the restoration process (slider, arrow keys, swipe), synced zoom, and a before/after swipe.
const DipViewer = (function () {
  // Step through `frames` ({src, step, loss, psnr}); `add` appends one (live runs) and follows
  // the newest unless the reader moved away from it.
  function process(options) {
    const $ = (id) => document.getElementById(id);
    const slider = $(options.slider || "slider"), img = $(options.image || "frame");
    const label = $(options.label || "label"), viewer = $(options.viewer || "viewer");
    const frames = options.frames || [];
    const state = {chosen: options.chosen, total: options.total};
    const show = (i) => {
      if (!frames.length) return;
      i = Math.max(0, Math.min(frames.length - 1, i));
      slider.max = frames.length - 1;
      slider.value = i;
      const f = frames[i];
      img.src = f.src;
      let text = "step " + f.step + (state.total ? " / " + state.total : "");
      if (f.loss !== null && f.loss !== undefined) text += " · loss " + Number(f.loss).toPrecision(4);
      if (f.psnr !== null && f.psnr !== undefined) text += " · PSNR " + f.psnr.toFixed(2) + " dB";
      if (f.note) text += " · " + f.note;
      label.textContent = text;
      if (f.step === state.chosen) {
        const mark = document.createElement("span");
        mark.className = "best"; mark.textContent = "  ← result";
        label.appendChild(mark);
      }
    };
    const current = () => Number(slider.value);
    const chosenIndex = () => frames.findIndex((f) => f.step === state.chosen);
    slider.addEventListener("input", () => show(current()));
    $(options.prev || "prev").addEventListener("click", () => show(current() - 1));
    $(options.next || "next").addEventListener("click", () => show(current() + 1));
    const jump = $(options.jump || "jump");
    if (jump) jump.addEventListener("click", () => show(chosenIndex() >= 0 ? chosenIndex() : frames.length - 1));
    document.addEventListener("keydown", (e) => {
      const tag = e.target && e.target.tagName;
      if (tag === "INPUT" && e.target !== slider || tag === "SELECT" || tag === "TEXTAREA") return;
      if (e.key === "ArrowRight") { show(current() + 1); e.preventDefault(); }
      if (e.key === "ArrowLeft") { show(current() - 1); e.preventDefault(); }
    });
    let startX = null;
    viewer.addEventListener("touchstart", (e) => { startX = e.changedTouches[0].clientX; }, {passive: true});
    viewer.addEventListener("touchend", (e) => {
      if (startX === null) return;
      const dx = e.changedTouches[0].clientX - startX;
      if (Math.abs(dx) > 30) show(current() + (dx < 0 ? 1 : -1));
      startX = null;
    });
    show(0);
    return {
      frames, show, state,
      add(frame) {
        const following = !frames.length || current() === frames.length - 1;
        frames.push(frame);
        slider.max = frames.length - 1;
        if (following) show(frames.length - 1);
      },
      clear() { frames.length = 0; slider.max = 0; img.removeAttribute("src"); label.textContent = ""; },
    };
  }

  // One zoom factor for every `.zoombox img`; the mouse over any image sets where all look.
  function zoom(options) {
    options = options || {};
    const input = document.getElementById(options.input || "zoom");
    if (!input) return;
    const images = () => document.querySelectorAll(".zoombox img");
    const apply = () => {
      document.getElementById(options.value || "zoomvalue").textContent = input.value + "x";
      images().forEach((im) => { im.style.transform = "scale(" + input.value + ")"; });
    };
    input.addEventListener("input", apply);
    document.querySelectorAll(".zoombox").forEach((box) => {
      box.addEventListener("mousemove", (e) => {
        const r = box.getBoundingClientRect();
        const origin = ((e.clientX - r.left) / r.width * 100) + "% " + ((e.clientY - r.top) / r.height * 100) + "%";
        images().forEach((im) => { im.style.transformOrigin = origin; });
      });
      box.addEventListener("wheel", (e) => {
        e.preventDefault();
        input.value = Math.max(1, Math.min(8, Number(input.value) + (e.deltaY < 0 ? 0.5 : -0.5)));
        apply();
      }, {passive: false});
    });
  }

  // Before/after: `box` holds two images, the second (after) drawn over the first right of the
  // divider (before on the left, after on the right); the range input or a drag moves it.
  function swipe(box, range) {
    const top = box.querySelector(".after");
    const line = box.querySelector(".divider");
    const set = (percent) => {
      percent = Math.max(0, Math.min(100, percent));
      range.value = percent;
      top.style.clipPath = "inset(0 0 0 " + percent + "%)";
      line.style.left = percent + "%";
    };
    range.addEventListener("input", () => set(Number(range.value)));
    const follow = (e) => {
      const r = box.getBoundingClientRect();
      const x = (e.touches ? e.touches[0].clientX : e.clientX) - r.left;
      set(x / r.width * 100);
    };
    let dragging = false;
    box.addEventListener("pointerdown", (e) => { dragging = true; follow(e); });
    window.addEventListener("pointerup", () => { dragging = false; });
    box.addEventListener("pointermove", (e) => { if (dragging) follow(e); });
    set(Number(range.value || 50));
    return {set};
  }

  return {process, zoom, swipe};
})();
