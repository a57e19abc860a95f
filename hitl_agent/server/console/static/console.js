// HITL reviewer console. Plain JS, no build step, no dependencies.
//
// Safety rule: the only HTML ever parsed from data is `request_html`, which the server
// renders with hitl_agent.server.console.render_markdown (inert by construction). Everything
// else — labels, context, ids, errors — goes through textContent / createElement.
"use strict";

(function () {
  const TOKEN_KEY = "hitl-reviewer-token";
  const REFRESH_MS = 5000;
  // The console is mounted at /console next to /v1; resolve the API relative to the page.
  const API = new URL("../v1/reviewer/", window.location.href);
  const PRIORITIES = ["critical", "high", "medium", "low"];
  // hitl_agent stamps its correlation key into context under this key: routing data for the
  // library, meaningless (and misleading) to a reviewer, so the console never shows it.
  const INTERNAL_CONTEXT_KEY = "hitl_agent";

  const $ = (id) => document.getElementById(id);
  const cards = new Map(); // request id -> {item, el, claimed, answered}
  let refreshTimer = null;

  // ---- small DOM helpers (never innerHTML) ----------------------------------------------
  // Everything that renders invisibly or reorders text becomes a visible ⟦U+XXXX⟧ marker, by
  // the rule of hitl_agent/_text.py (which the server applies to request_html): controls but
  // tab and newline, format characters (bidi, zero-width, tag characters), line/paragraph
  // separators, lone surrogates, Default_Ignorable_Code_Point (variation selectors, fillers)
  // and two blank glyphs. The browser's own Unicode tables answer the property escapes.
  const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}\u2800\u{1D159}]/gu;

  function reveal(text) {
    return String(text).replace(INVISIBLE, (ch) =>
      ch === "\t" || ch === "\n"
        ? ch
        : "⟦U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "⟧",
    );
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = reveal(value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) throw new Error("use addEventListener, not " + key);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(reveal(child)));
    }
    return node;
  }

  function showBanner(message) {
    const banner = $("banner");
    banner.textContent = reveal(message || "");
    banner.hidden = !message;
  }

  // ---- API -----------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const init = {
      method,
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(new URL(path, API), init);
    } catch (err) {
      throw new ApiError(0, "Cannot reach the server: " + err.message);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (_err) {
      payload = null;
    }
    if (!response.ok || (payload && payload.error === true)) {
      const msg = payload && typeof payload.msg === "string" ? payload.msg : response.statusText;
      throw new ApiError(response.status, msg || "HTTP " + response.status);
    }
    return payload ? payload.data : null;
  }

  // ---- session -------------------------------------------------------------------------
  function showLogin(message) {
    stopRefresh();
    $("login").hidden = false;
    $("queue-section").hidden = true;
    $("session").hidden = true;
    showBanner(message || "");
    $("token").focus();
  }

  async function login(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    let me;
    try {
      me = await api("GET", "me");
    } catch (err) {
      if (err.status === 401) return logout("The server rejected the reviewer token: " + err.message);
      return showLogin(err.message);
    }
    $("login").hidden = true;
    $("queue-section").hidden = false;
    $("session").hidden = false;
    $("who").textContent = me && me.email ? reveal(me.email) : "";
    await refresh();
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    for (const entry of cards.values()) entry.el.remove();
    cards.clear();
    showLogin(message);
  }

  function stopRefresh() {
    if (refreshTimer !== null) clearInterval(refreshTimer);
    refreshTimer = null;
  }

  // ---- queue ---------------------------------------------------------------------------
  async function refresh() {
    let data;
    try {
      data = await api("GET", "queue");
    } catch (err) {
      if (err.status === 401) {
        logout("The server rejected the reviewer token (401): " + err.message);
      } else {
        showBanner(err.message);
      }
      return;
    }
    showBanner("");
    const items = (data && Array.isArray(data.requests) ? data.requests : []).slice();
    // The server already orders the queue; keep that order but be sure critical comes first.
    items.sort((a, b) => rank(a.priority) - rank(b.priority));
    const seen = new Set();
    const list = $("queue");
    for (const item of items) {
      seen.add(item.id);
      let entry = cards.get(item.id);
      if (!entry) {
        entry = { item, claimed: isMine(item), answered: false, el: null };
        entry.el = buildCard(entry);
        cards.set(item.id, entry);
      } else {
        entry.item = item;
        // The server is the truth: a claim that lapsed (claim timeout) must not look held here.
        entry.claimed = isMine(item);
        updateStatus(entry);
      }
      list.append(entry.el); // re-append keeps DOM order == queue order without rebuilding forms
    }
    for (const [id, entry] of cards) {
      if (!seen.has(id) && !entry.answered) {
        entry.el.remove();
        cards.delete(id);
      }
    }
    const open = items.length;
    $("queue-count").textContent = "(" + open + ")";
    $("queue-empty").hidden = open !== 0;
    $("status-line").textContent = "Updated " + new Date().toLocaleTimeString();
    if (refreshTimer === null) refreshTimer = setInterval(refresh, REFRESH_MS);
  }

  function rank(priority) {
    const index = PRIORITIES.indexOf(priority);
    return index === -1 ? PRIORITIES.length : index;
  }

  function isMine(item) {
    // The queue lists pending requests, this reviewer's claims, and lapsed claims of others;
    // so a claim that has not expired is ours.
    if (item.status !== "claimed") return false;
    const expires = Date.parse(item.claim_expires_at || "");
    return Number.isNaN(expires) || expires > Date.now();
  }

  // ---- one card ------------------------------------------------------------------------
  function buildCard(entry) {
    const item = entry.item;
    const priority = PRIORITIES.includes(item.priority) ? item.priority : "low";
    const card = el("li", {
      class: "card prio-" + priority,
      dataset: { requestId: item.id, responseType: item.response_type },
    });

    const status = el("span", { class: "badge status", text: item.status || "pending" });
    const countdown = el("span", { class: "countdown" });
    if (item.timeout_at) countdown.dataset.timeoutAt = item.timeout_at;
    card.append(
      el(
        "div",
        { class: "card-head" },
        el("span", { class: "badge prio-" + priority, text: String(item.priority || "low") }),
        status,
        el("span", { class: "meta", text: String(item.response_type) }),
        el("span", { class: "meta", text: "id " + item.id }),
        countdown,
      ),
    );
    card.append(el("p", { class: "times", text: timesLine(item) }));
    entry.statusEl = status;

    // Request text: the one place HTML from data is inserted (server-rendered, inert).
    card.append(el("div", { class: "section-label", text: "Request (written by the agent)" }));
    const text = el("div", { class: "request-text" });
    text.innerHTML = typeof item.request_html === "string" ? item.request_html : "";
    if (typeof item.request_html !== "string") text.textContent = reveal(item.request_text || "");
    card.append(text);

    if (item.type === "image" && item.image_url) card.append(buildImage(item.image_url));
    if (item.type === "file" && item.file_url) card.append(buildDocument(item));

    const context = reviewerContext(item.context);
    if (context !== undefined) {
      card.append(el("div", { class: "section-label", text: "Context" }));
      card.append(el("pre", { class: "context", text: JSON.stringify(context, null, 2) }));
    }
    // What a timeout does, as the server words it (hitl_agent.server.console.timeout_note):
    // a request of hitl_agent's gate tells the agent nobody answered, whatever its default.
    card.append(el("p", { class: "default", text: timeoutNote(item) }));

    const claim = el("button", { type: "button", class: "claim", text: "Claim" });
    const release = el("button", { type: "button", class: "release", text: "Release" });
    claim.addEventListener("click", () => claimOrRelease(entry, "claim"));
    release.addEventListener("click", () => claimOrRelease(entry, "release"));
    entry.claimBtn = claim;
    entry.releaseBtn = release;
    card.append(el("div", { class: "actions" }, claim, release));

    entry.errorEl = el("div", { class: "answer-error", role: "alert" });
    entry.okEl = el("div", { class: "answer-ok", role: "status" });
    const form = buildForm(entry);
    entry.form = form;
    card.append(form, entry.errorEl, entry.okEl);
    entry.el = card;
    updateStatus(entry);
    tickCountdown(countdown);
    return card;
  }

  function reviewerContext(context) {
    // The context without the library's internal routing data; undefined when nothing is left.
    if (context === null || context === undefined) return undefined;
    if (typeof context !== "object" || Array.isArray(context)) return context;
    const shown = {};
    for (const [key, value] of Object.entries(context)) {
      if (key !== INTERNAL_CONTEXT_KEY) shown[key] = value;
    }
    return Object.keys(shown).length ? shown : undefined;
  }

  function timeoutNote(item) {
    if (typeof item.timeout_note === "string" && item.timeout_note) return item.timeout_note;
    // A server without the note: the stored default, said as a default (not as the outcome).
    if (item.default_response === null || item.default_response === undefined) {
      return "If nobody answers in time: the request times out, with no default answer.";
    }
    return "If nobody answers in time: the request times out; its default answer is " + describeDefault(item);
  }

  function describeDefault(item) {
    // A reviewer reads labels ("Reject"), not stored values ("reject").
    const value = item.default_response;
    const config = item.response_config && typeof item.response_config === "object" ? item.response_config : {};
    if (item.response_type === "boolean") {
      const label = value ? config.true_label : config.false_label;
      return typeof label === "string" ? label : value ? "True" : "False";
    }
    if (item.response_type === "single_select" || item.response_type === "multi_select") {
      const labels = new Map(options(config).map((option) => [option.value, option.label]));
      const values = Array.isArray(value) ? value : [value];
      return values.map((v) => labels.get(String(v)) ?? String(v)).join(", ");
    }
    let text = value;
    if (text && typeof text === "object" && typeof text.revised_text === "string") text = text.revised_text;
    if (typeof text === "string") return text.trim() ? "“" + text + "”" : "an empty text";
    return JSON.stringify(value);
  }

  function absolute(iso) {
    const at = Date.parse(iso || "");
    return Number.isNaN(at) ? null : new Date(at).toLocaleString();
  }

  function timesLine(item) {
    // The countdown alone hides *when*: show both instants in the reviewer's own time zone.
    const parts = [];
    const created = absolute(item.created_at);
    const deadline = absolute(item.timeout_at);
    if (created) parts.push("Created " + created);
    parts.push(deadline ? "deadline " + deadline : "no deadline");
    return parts.join(" · ");
  }

  function buildImage(url) {
    // The image URL is chosen by the operator's code (the API-key holder), not by markdown.
    // It is shown as text first and fetched only when the reviewer asks, with no referrer,
    // so merely opening the queue never pings a third party.
    const box = el("div", { class: "image" });
    box.append(el("div", { class: "section-label", text: "Image (loads only on request)" }));
    box.append(el("div", { class: "image-url", text: url }));
    let parsed = null;
    try {
      parsed = new URL(url);
    } catch (_err) {
      parsed = null;
    }
    if (parsed && (parsed.protocol === "https:" || parsed.protocol === "http:")) {
      const button = el("button", { type: "button", class: "load-image", text: "Load image from " + parsed.host });
      button.addEventListener("click", () => {
        const img = el("img", { class: "request-image", alt: "Image attached to the request" });
        img.referrerPolicy = "no-referrer";
        // A failed load says so in words; a broken-image icon tells the reviewer nothing.
        img.addEventListener("error", () => {
          img.replaceWith(
            el("div", {
              class: "image-error",
              role: "alert",
              text: "The image could not be loaded from " + parsed.host + ". Judge the request without it, or ask for it again.",
            }),
          );
        });
        img.src = parsed.href;
        button.replaceWith(img);
      });
      box.append(button);
    } else {
      box.append(el("div", { class: "hint", text: "Not an http(s) URL: not loaded." }));
    }
    return box;
  }

  function buildDocument(item) {
    // A document (e.g. an upload the agent attached) is shown as its name, type and URL, and
    // opened only when the reviewer asks: in a new tab, without a referrer or an opener.
    // The local server serves uploads as attachments under a sandboxing CSP.
    const box = el("div", { class: "image document" });
    box.append(el("div", { class: "section-label", text: "Document (opens only on request)" }));
    const name = typeof item.file_name === "string" && item.file_name ? item.file_name : "document";
    const kind = typeof item.file_type === "string" && item.file_type ? " (" + item.file_type + ")" : "";
    box.append(el("div", { class: "image-url", text: name + kind + ": " + item.file_url }));
    let parsed = null;
    try {
      parsed = new URL(item.file_url);
    } catch (_err) {
      parsed = null;
    }
    if (parsed && (parsed.protocol === "https:" || parsed.protocol === "http:")) {
      box.append(
        el("a", {
          class: "open-document",
          href: parsed.href,
          target: "_blank",
          rel: "noopener noreferrer",
          referrerpolicy: "no-referrer",
          text: "Open " + name + " from " + parsed.host,
        }),
      );
    } else {
      box.append(el("div", { class: "hint", text: "Not an http(s) URL: not opened." }));
    }
    return box;
  }

  function updateStatus(entry) {
    const item = entry.item;
    if (entry.answered) return;
    entry.statusEl.textContent = entry.claimed ? "claimed by you" : item.status || "pending";
    entry.claimBtn.disabled = entry.claimed;
    entry.releaseBtn.disabled = !entry.claimed;
    for (const control of entry.form.querySelectorAll("input, textarea, button")) {
      control.disabled = !entry.claimed;
    }
    entry.needClaim.hidden = entry.claimed;
    if (entry.afterStatus) entry.afterStatus();
  }

  async function claimOrRelease(entry, action) {
    entry.errorEl.textContent = "";
    try {
      const data = await api("POST", "requests/" + encodeURIComponent(entry.item.id) + "/" + action);
      if (data && data.request) entry.item = data.request;
      else entry.item.status = action === "claim" ? "claimed" : "pending";
      entry.claimed = action === "claim" && isMine(entry.item);
      updateStatus(entry);
    } catch (err) {
      if (err.status === 401) return logout("Session expired: " + err.message);
      entry.errorEl.textContent = reveal(action + " failed (" + err.status + "): " + err.message);
    }
  }

  async function submitAnswer(entry, value) {
    entry.errorEl.textContent = "";
    try {
      await api("POST", "requests/" + encodeURIComponent(entry.item.id) + "/respond", {
        response_data: value,
      });
    } catch (err) {
      if (err.status === 401) return logout("Session expired: " + err.message);
      entry.errorEl.textContent = reveal("The server refused the answer (" + err.status + "): " + err.message);
      return;
    }
    entry.answered = true;
    entry.el.classList.add("answered");
    entry.statusEl.textContent = "answered";
    entry.okEl.textContent = reveal("Answer sent: " + JSON.stringify(value));
    for (const control of entry.el.querySelectorAll("input, textarea, button")) control.disabled = true;
    setTimeout(() => {
      entry.el.remove();
      cards.delete(entry.item.id);
    }, 3000);
  }

  function localError(entry, message) {
    entry.errorEl.textContent = reveal(message);
  }

  // ---- answer forms, one per response type ----------------------------------------------
  function options(config) {
    const raw = Array.isArray(config.options) ? config.options : [];
    return raw.map((option) =>
      typeof option === "string"
        ? { value: snake(option), label: option }
        : {
            value: String(option.value),
            label: String(option.label ?? option.value),
            description: typeof option.description === "string" ? option.description : "",
            color: typeof option.color === "string" ? option.color : "",
          },
    );
  }

  function choice(input, option) {
    // An option as the reviewer reads it: colour (a strict #rrggbb only, set through the
    // CSSOM, never as markup), label, and the description under it.
    const body = el("span", { class: "option-body" });
    if (/^#[0-9a-fA-F]{6}$/.test(option.color || "")) {
      const swatch = el("span", { class: "option-swatch", "aria-hidden": "true" });
      swatch.style.backgroundColor = option.color;
      body.append(swatch);
    }
    body.append(el("span", { class: "option-label", text: option.label }));
    if (option.description) {
      body.append(el("span", { class: "option-description", text: option.description }));
    }
    return el("label", { class: "choice option" }, input, body);
  }

  function snake(label) {
    // Mirrors HITL.sh / hitl_agent.models.option_value for plain-string options.
    const value = label.trim().toLowerCase().replace(/[^0-9a-z]+/g, "_").replace(/^_+|_+$/g, "");
    return (value || label.trim()).slice(0, 100);
  }

  function num(value, fallback) {
    return typeof value === "number" && Number.isFinite(value) ? value : fallback;
  }

  function buildForm(entry) {
    const item = entry.item;
    const config = item.response_config && typeof item.response_config === "object" ? item.response_config : {};
    const form = el("form", { class: "answer", novalidate: true, dataset: { type: item.response_type } });
    entry.needClaim = el("p", { class: "need-claim", text: "Claim the request to answer it." });
    form.append(entry.needClaim);
    const builder = FORMS[item.response_type];
    if (!builder) {
      form.append(el("p", { class: "hint", text: "Unsupported response type: " + item.response_type }));
      return form;
    }
    const read = builder(form, config, entry);
    if (read) {
      const submit = el("button", { type: "submit", class: "primary submit", text: "Send answer" });
      form.append(el("div", { class: "submit-row" }, submit));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const result = read();
        if (result.error) return localError(entry, result.error);
        submitAnswer(entry, result.value);
      });
    } else {
      form.addEventListener("submit", (event) => event.preventDefault());
    }
    return form;
  }

  function textArea(form, config, initial, entry) {
    const max = num(config.max_length, 5000);
    const min = num(config.min_length, 0);
    const area = el("textarea", {
      name: "text",
      maxlength: max,
      placeholder: typeof config.placeholder === "string" ? config.placeholder : null,
      "aria-label": "Answer text",
    });
    area.value = initial;
    const counter = el("div", { class: "hint" });
    // Count code points as the server (Python len) does; String.length counts UTF-16 units.
    const length = (text) => [...text].length;
    const update = () => {
      counter.textContent = length(area.value) + " / " + max + " characters" + (min ? " (at least " + min + ")" : "");
    };
    area.addEventListener("input", update);
    update();
    form.append(area, counter);
    return () => {
      const value = area.value;
      if (length(value) > max) return { error: "At most " + max + " characters." };
      if (length(value) < min) return { error: "At least " + min + " characters." };
      if (config.required === true && value.trim() === "") return { error: "An answer is required." };
      return { value };
    };
  }

  const FORMS = {
    text(form, config, entry) {
      return textArea(form, config, "", entry);
    },

    editable_text(form, config, entry) {
      const draft = typeof config.draft_text === "string" ? config.draft_text : "";
      form.append(el("div", { class: "hint", text: "Edit the draft, then send the revised text." }));
      if (reveal(draft) !== draft) {
        // The text box must hold the real draft (it is what gets sent); the hidden characters
        // in it are shown here, marked.
        form.append(
          el("div", {
            class: "hint invisible-warning",
            text: "The draft holds invisible or direction-changing characters, marked below; they are sent as they are unless you delete them.",
          }),
          el("pre", { class: "context draft-revealed", text: draft }),
        );
      }
      form.append(
        el("div", {
          class: "hint approves",
          text: "Sending the revised text approves it: the agent will use exactly the text you send.",
        }),
      );
      return textArea(form, config, draft, entry);
    },

    single_select(form, config, entry) {
      const name = "single-" + entry.item.id;
      const set = el("fieldset", {}, el("legend", { class: "hint", text: "Choose one" }));
      for (const option of options(config)) {
        const input = el("input", { type: "radio", name, value: option.value });
        set.append(choice(input, option));
      }
      form.append(set);
      return () => {
        const chosen = set.querySelector("input:checked");
        return chosen ? { value: chosen.value } : { error: "Choose one option." };
      };
    },

    multi_select(form, config, entry) {
      const opts = options(config);
      const max = num(config.max_selections, opts.length);
      const min = num(config.min_selections, 1);
      const set = el("fieldset", {}, el("legend", { class: "hint", text: "Choose " + (min === max ? min : min + " to " + max) }));
      const boxes = [];
      for (const option of opts) {
        const input = el("input", { type: "checkbox", value: option.value });
        boxes.push(input);
        set.append(choice(input, option));
      }
      // Enforce the maximum as the reviewer clicks: once full, the unchecked boxes lock.
      const enforce = () => {
        const count = boxes.filter((box) => box.checked).length;
        for (const box of boxes) box.dataset.locked = String(!box.checked && count >= max);
        for (const box of boxes) if (entry.claimed && !entry.answered) box.disabled = box.dataset.locked === "true";
      };
      set.addEventListener("change", enforce);
      entry.afterStatus = enforce;
      form.append(set);
      return () => {
        const values = boxes.filter((box) => box.checked).map((box) => box.value);
        if (values.length < min || values.length > max) {
          return { error: "Select between " + min + " and " + max + " options (" + values.length + " selected)." };
        }
        return { value: values };
      };
    },

    rating(form, config, entry) {
      const min = num(config.scale_min, num(config.min, 1));
      const max = num(config.scale_max, num(config.max, 5));
      const step = num(config.scale_step, num(config.step, 1)) || 1;
      const labels = config.labels && typeof config.labels === "object" ? config.labels : {};
      const count = Math.round((max - min) / step) + 1;
      let selected = null;
      const scale = el("div", { class: "scale", role: "group", "aria-label": "Rating " + min + " to " + max });
      if (count <= 21) {
        for (let i = 0; i < count; i++) {
          const value = Number((min + i * step).toFixed(6));
          const label = labels[String(value)];
          const button = el("button", {
            type: "button",
            class: "rate",
            "aria-pressed": "false",
            dataset: { value: String(value) },
            text: label ? value + " · " + label : String(value),
          });
          button.addEventListener("click", () => {
            selected = value;
            for (const other of scale.querySelectorAll("button")) other.setAttribute("aria-pressed", String(other === button));
          });
          scale.append(button);
        }
      } else {
        const range = el("input", { type: "range", min, max, step, "aria-label": "Rating" });
        const shown = el("output", { text: "" });
        range.addEventListener("input", () => {
          selected = Number(range.value);
          shown.textContent = range.value;
        });
        scale.append(range, shown);
      }
      form.append(scale);
      return () => (selected === null ? { error: "Pick a rating." } : { value: selected });
    },

    number(form, config, entry) {
      const places = Math.max(0, Math.min(10, num(config.decimal_places, 2)));
      const min = num(config.min_value, num(config.min, null));
      const max = num(config.max_value, num(config.max, null));
      const input = el("input", {
        type: "number",
        name: "number",
        step: places === 0 ? "1" : (1 / 10 ** places).toFixed(places),
        min: min === null ? null : min,
        max: max === null ? null : max,
        "aria-label": "Number",
      });
      const row = el("label", { class: "choice" });
      if (config.prefix) row.append(String(config.prefix) + " ");
      row.append(input);
      if (config.suffix) row.append(" " + String(config.suffix));
      const bounds = (min === null ? "" : "from " + min + " ") + (max === null ? "" : "to " + max) + ", " + places + " decimal places";
      form.append(row, el("div", { class: "hint", text: bounds }));
      return () => {
        if (input.value.trim() === "") return { error: "Enter a number." };
        const value = Number(input.value);
        if (!Number.isFinite(value)) return { error: "Enter a valid number." };
        if (min !== null && value < min) return { error: "The number must be at least " + min + "." };
        if (max !== null && value > max) return { error: "The number must be at most " + max + "." };
        if (value < 0 && config.allow_negative !== true) return { error: "Negative numbers are not allowed." };
        const factor = 10 ** places;
        if (Math.abs(Math.round(value * factor) - value * factor) > 1e-6) {
          return { error: "Use at most " + places + " decimal places." };
        }
        return { value };
      };
    },

    boolean(form, config, entry) {
      const row = el("div", { class: "bool" });
      // One click answers, except on critical requests: there the click only arms the answer
      // and a second, explicit confirmation sends it (a stray tap must not move money).
      const critical = entry.item.priority === "critical";
      const confirm = el("div", { class: "confirm-row", hidden: true });
      const confirmText = el("span", { class: "confirm-text" });
      const confirmBtn = el("button", { type: "button", class: "primary confirm", text: "Confirm" });
      const cancelBtn = el("button", { type: "button", class: "cancel-confirm", text: "Cancel" });
      confirm.append(confirmText, confirmBtn, cancelBtn);
      let armed = null;
      confirmBtn.addEventListener("click", () => {
        if (armed !== null) submitAnswer(entry, armed);
      });
      cancelBtn.addEventListener("click", () => {
        armed = null;
        confirm.hidden = true;
      });
      const make = (value, label, color, fallback) => {
        const button = el("button", { type: "button", class: "bool-" + value, dataset: { value: String(value) }, text: label });
        // Colors come from the config; only a strict #rrggbb is applied (CSSOM, not inline HTML).
        const hex = typeof color === "string" && /^#[0-9a-fA-F]{6}$/.test(color) ? color : fallback;
        button.style.borderColor = hex;
        button.addEventListener("click", () => {
          if (!critical) return submitAnswer(entry, value);
          armed = value;
          confirmText.textContent = reveal("Critical request: send “" + label + "”?");
          confirm.hidden = false;
        });
        return button;
      };
      row.append(
        make(true, typeof config.true_label === "string" ? config.true_label : "True", config.true_color, "#16a34a"),
        make(false, typeof config.false_label === "string" ? config.false_label : "False", config.false_color, "#dc2626"),
      );
      form.append(row, confirm);
      return null; // the buttons send the answer themselves
    },
  };

  // ---- countdowns ----------------------------------------------------------------------
  function tickCountdown(node) {
    const at = node.dataset.timeoutAt;
    if (!at) {
      node.textContent = "no timeout";
      return;
    }
    const left = Math.round((Date.parse(at) - Date.now()) / 1000);
    if (Number.isNaN(left)) {
      node.textContent = reveal("times out at " + at);
      return;
    }
    if (left <= 0) {
      node.textContent = "timed out";
      node.classList.add("soon");
      return;
    }
    const d = Math.floor(left / 86400);
    const h = Math.floor((left % 86400) / 3600);
    const m = Math.floor((left % 3600) / 60);
    const s = left % 60;
    const pad = (x) => String(x).padStart(2, "0");
    node.textContent = "times out in " + (d ? d + "d " : "") + pad(h) + ":" + pad(m) + ":" + pad(s);
    node.classList.toggle("soon", left < 300);
  }

  // ---- wiring --------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      $("token").value = "";
      if (!token) return showBanner("Enter the reviewer token.");
      login(token);
    });
    $("logout").addEventListener("click", () => logout(""));
    $("refresh").addEventListener("click", () => refresh());
    setInterval(() => document.querySelectorAll(".countdown").forEach(tickCountdown), 1000);
    if (sessionStorage.getItem(TOKEN_KEY)) login(sessionStorage.getItem(TOKEN_KEY));
    else showLogin("");
  });
})();
