"use strict";
// dip serve's page: open an image, choose a task, paint a mask, run, watch, compare, download.
// Uses the report's viewers (viewer.js: DipViewer.process and DipViewer.swipe).
(function () {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token") || "";
  const headers = token ? {"X-Dip-Token": token} : {};
  const state = {tasks: {}, upload: null, job: null, events: null, live: null, strokes: []};

  const showError = (text) => { $("error").textContent = text || ""; };
  async function call(url, options) {
    const response = await fetch(url, Object.assign({headers: Object.assign({}, headers)}, options || {}));
    const body = (response.headers.get("content-type") || "").includes("json") ? await response.json() : {};
    if (!response.ok) throw new Error(body.error || ("the server answered " + response.status));
    return body;
  }
  const upload = (blob, name) => call("/api/uploads", {
    method: "POST", body: blob, headers: Object.assign({"X-Filename": name || "image"}, headers),
  });

  // -- tasks and their options, from the server ------------------------------------------------
  async function loadTasks() {
    const info = await call("/api/tasks");
    $("device").textContent = "device: " + info.device;
    for (const task of info.tasks) {
      state.tasks[task.command] = task;
      const option = document.createElement("option");
      option.value = task.command; option.textContent = task.command;
      $("task").appendChild(option);
    }
    chooseTask();
  }

  function chooseTask() {
    const task = state.tasks[$("task").value];
    $("taskhelp").textContent = task.help;
    const options = $("options");
    options.textContent = "";
    for (const field of task.options) {
      const label = document.createElement("label");
      label.title = field.help;
      label.textContent = field.name + " ";
      let input;
      if (field.switch) {
        input = document.createElement("input"); input.type = "checkbox"; input.checked = field.default === true;
      } else if (field.choices) {
        input = document.createElement("select");
        for (const choice of field.choices) {
          const option = document.createElement("option");
          option.value = option.textContent = choice;
          input.appendChild(option);
        }
        if (field.default !== null) input.value = field.default;
      } else {
        input = document.createElement("input"); input.type = "text";
        input.placeholder = field.default === null ? (field.name === "sigma" ? "blind" : "") : String(field.default);
        if (field.required && field.name === "kernel") input.value = "gaussian:2";
      }
      input.dataset.field = field.name;
      input.id = "option-" + field.name;
      label.appendChild(input);
      options.appendChild(label);
    }
    const presets = $("preset");
    presets.textContent = "";
    for (const name of task.presets) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      presets.appendChild(option);
    }
    presets.value = task.presets.includes("default") ? "default" : task.presets[0];
    $("brushbar").hidden = !task.images.some((image) => image.name === "mask");
    $("mask").hidden = $("brushbar").hidden;
  }

  // -- opening an image ------------------------------------------------------------------------
  async function open(file) {
    showError("");
    try {
      const done = await upload(file, file.name);
      state.upload = done;
      const img = $("source");
      await new Promise((resolve, reject) => {
        img.onload = resolve; img.onerror = () => reject(new Error("the preview did not load"));
        img.src = "/api/uploads/" + done.id + "/preview.png";
      });
      const canvas = $("mask");
      canvas.width = done.width; canvas.height = done.height;
      state.strokes = [];
      $("setup").hidden = false;
      $("compare").hidden = true;
    } catch (error) {
      showError(error.message);
    }
  }

  $("file").addEventListener("change", (e) => { if (e.target.files[0]) open(e.target.files[0]); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) open(e.dataTransfer.files[0]);
  });
  $("task").addEventListener("change", chooseTask);

  // -- the brush -------------------------------------------------------------------------------
  const canvas = $("mask"), paint = canvas.getContext("2d");
  let last = null;
  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  const brushWidth = () => Number($("brush").value) * canvas.width / canvas.getBoundingClientRect().width;
  canvas.addEventListener("pointerdown", (e) => {
    state.strokes.push(paint.getImageData(0, 0, canvas.width, canvas.height));
    if (state.strokes.length > 30) state.strokes.shift();
    canvas.setPointerCapture(e.pointerId);
    last = point(e);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (e) => { if (last) { const p = point(e); stroke(last, p); last = p; } });
  const end = () => { last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  function stroke(from, to) {
    paint.globalCompositeOperation = $("eraser").checked ? "destination-out" : "source-over";
    paint.strokeStyle = "#ff2020"; paint.lineCap = paint.lineJoin = "round";
    paint.lineWidth = brushWidth();
    paint.beginPath(); paint.moveTo(from[0], from[1]); paint.lineTo(to[0], to[1]); paint.stroke();
  }
  $("undo").addEventListener("click", () => { if (state.strokes.length) paint.putImageData(state.strokes.pop(), 0, 0); });
  $("clear").addEventListener("click", () => {
    state.strokes.push(paint.getImageData(0, 0, canvas.width, canvas.height));
    paint.clearRect(0, 0, canvas.width, canvas.height);
  });
  $("maskfile").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const image = await createImageBitmap(file).catch(() => null);
    if (!image) { showError("cannot read the mask file " + file.name); return; }
    const off = new OffscreenCanvas(canvas.width, canvas.height), ctx = off.getContext("2d");
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
    state.strokes.push(paint.getImageData(0, 0, canvas.width, canvas.height));
    const shown = paint.getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < data.data.length; i += 4) {  // black (a hole) in the file: painted here
      const grey = (data.data[i] + data.data[i + 1] + data.data[i + 2]) / 3;
      if (grey < 128) { shown.data[i] = 255; shown.data[i + 1] = 32; shown.data[i + 2] = 32; shown.data[i + 3] = 255; }
    }
    paint.putImageData(shown, 0, 0);
  });
  async function maskBlob() {  // white = known, black = to fill
    const pixels = paint.getImageData(0, 0, canvas.width, canvas.height).data;
    let holes = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] >= 128) holes++;
    if (!holes) throw new Error("paint over what to fill first (or load a mask)");
    const off = document.createElement("canvas");
    off.width = canvas.width; off.height = canvas.height;
    const ctx = off.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, off.width, off.height);
    ctx.globalCompositeOperation = "destination-out"; ctx.drawImage(canvas, 0, 0);
    ctx.globalCompositeOperation = "destination-over"; ctx.fillStyle = "#000"; ctx.fillRect(0, 0, off.width, off.height);
    return new Promise((resolve) => off.toBlob(resolve, "image/png"));
  }

  // -- running ---------------------------------------------------------------------------------
  $("form").addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("");
    if (!state.upload) { showError("open an image first"); return; }
    const task = state.tasks[$("task").value];
    try {
      const images = {};
      if (!$("brushbar").hidden) images.mask = (await upload(await maskBlob(), "mask.png")).id;
      const options = {};
      for (const input of $("options").querySelectorAll("[data-field]")) {
        options[input.dataset.field] = input.type === "checkbox" ? input.checked : input.value;
      }
      const job = await call("/api/jobs", {
        method: "POST",
        headers: Object.assign({"Content-Type": "application/json"}, headers),
        body: JSON.stringify({upload: state.upload.id, task: task.command, options, images,
                              preset: $("preset").value, steps: $("steps").value}),
      });
      follow(job.id);
    } catch (error) {
      showError(error.message);
    }
  });

  function follow(id) {
    if (state.events) state.events.close();
    state.job = id;
    $("live").hidden = false;
    $("live").dataset.frames = "0";
    $("compare").hidden = true;
    $("run").disabled = true;
    $("stop").disabled = false;
    if (!state.live) state.live = DipViewer.process({frames: []});
    state.live.clear();
    state.live.state.chosen = null;
    const events = new EventSource("/api/jobs/" + id + "/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
    state.events = events;
    events.addEventListener("frame", (e) => {
      const f = JSON.parse(e.data);
      const left = f.eta === null ? "" : "at most " + Math.ceil(f.eta) + " s left";
      state.live.add({src: "/api/jobs/" + id + "/frames/" + f.index + ".png", step: f.step, loss: f.loss, note: left});
      $("live").dataset.frames = String(state.live.frames.length);
    });
    events.addEventListener("status", (e) => {
      const s = JSON.parse(e.data);
      state.live.state.total = s.total;
      const text = {queued: "waiting: place " + s.place + " in the queue", running: "fitting ..."}[s.status];
      $("status").textContent = text || (s.status + ": " + s.message);
      $("status").dataset.status = s.status;
      if (s.status === "failed") showError(s.message);
      if (["done", "stopped", "failed"].includes(s.status)) {
        events.close();
        $("run").disabled = false;
        $("stop").disabled = true;
        if (s.status !== "failed" && s.frames) finished(id, s);
      }
    });
    events.onerror = () => { if (events.readyState === EventSource.CLOSED) $("run").disabled = false; };
  }

  $("stop").addEventListener("click", async () => {
    if (!state.job) return;
    try { await call("/api/jobs/" + state.job + "/stop", {method: "POST"}); } catch (error) { showError(error.message); }
  });

  let swipe = null;
  function finished(id, status) {
    state.live.state.chosen = status.chosen;
    const base = "/api/jobs/" + id;
    const left = $("left");
    left.textContent = "";
    for (const [value, text] of [["input", "input"]].concat(status.baseline ? [["baseline", status.baseline]] : [])) {
      const option = document.createElement("option");
      option.value = value; option.textContent = text;
      left.appendChild(option);
    }
    const sources = {input: "/api/uploads/" + state.upload.id + "/preview.png", baseline: base + "/baseline.png"};
    const box = $("swipe");
    box.querySelector(".before").src = sources.input;
    box.querySelector(".after").src = base + "/result.png";
    left.onchange = () => { box.querySelector(".before").src = sources[left.value]; };
    $("download").href = base + "/result.png";
    $("webp").href = base + "/process.webp";
    $("gif").href = base + "/process.gif";
    $("summary").textContent = status.message;
    $("compare").hidden = false;
    if (!swipe) swipe = DipViewer.swipe(box, $("swiper"));
  }

  loadTasks().catch((error) => showError(error.message));
})();
