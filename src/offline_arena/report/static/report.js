// The report's interactivity: snapshot and scope switches, and the battle browser.
// Run text (prompts, answers, judge output, model names) only ever enters the page through
// textContent / option.text, never innerHTML: an answer holding markup is shown, not run.
(function () {
  "use strict";
  var PAGE_SIZE = 20;

  function showOnly(selector, attribute, value) {
    document.querySelectorAll(selector).forEach(function (el) { el.hidden = el.getAttribute(attribute) !== value; });
  }
  function bindSwitch(selectId, selector, attribute) {
    var select = document.getElementById(selectId);
    if (!select) return;
    select.addEventListener("change", function () { showOnly(selector, attribute, select.value); });
  }
  bindSwitch("leaderboard-snapshot", "div.snapshot", "data-snapshot");
  bindSwitch("matrix-scope", "div.matrix", "data-scope");

  var data = JSON.parse(document.getElementById("battle-data").textContent);
  var B = { tag: 0, prompt: 1, a: 2, b: 3, answerA: 4, answerB: 5, verdict: 6, scoreA: 7, scoreB: 8, judgment: 9, promptId: 10 };
  var state = { page: 0, matches: [] };
  var el = function (id) { return document.getElementById(id); };

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function addOptions(select, values) {
    values.forEach(function (value) {
      var option = document.createElement("option");
      option.value = value; option.text = value;
      select.appendChild(option);
    });
  }

  // The opponent filter lists the recipe's opponents when the battles have them, otherwise every model.
  var opponents = (data.opponents || []).filter(function (o) { return data.models.indexOf(o) >= 0; });
  if (!opponents.length) { opponents = data.models.slice(); el("opponent-label").textContent = "model"; }
  addOptions(el("filter-opponent"), opponents);
  addOptions(el("filter-stage"), data.tags);

  var searchable = null;  // lower-cased prompt + answers per battle, built on the first text search
  function haystack(i) {
    if (!searchable) {
      searchable = data.battles.map(function (b) {
        var parts = data.prompts[b[B.prompt]].map(function (m) { return m[1]; });
        parts.push(data.answers[b[B.answerA]][0], data.answers[b[B.answerB]][0]);
        return parts.join("\n").toLowerCase();
      });
    }
    return searchable[i];
  }

  function applyFilters() {
    var opponent = el("filter-opponent").value, stage = el("filter-stage").value;
    var verdict = el("filter-verdict").value, text = el("filter-text").value.trim().toLowerCase();
    state.matches = [];
    data.battles.forEach(function (b, i) {
      if (opponent && data.models[b[B.a]] !== opponent && data.models[b[B.b]] !== opponent) return;
      if (stage && data.tags[b[B.tag]] !== stage) return;
      if (verdict && (verdict === "none" ? b[B.verdict] !== "" : b[B.verdict] !== verdict)) return;
      if (text && haystack(i).indexOf(text) < 0) return;
      state.matches.push(i);
    });
    state.page = 0;
    render();
  }

  function shortenedNote(shown, full, what) {
    return shown < full ? what + " shortened: " + shown.toLocaleString() + " of " + full.toLocaleString() +
      " characters shown" : "";
  }

  function answerBox(side, b) {
    var answer = data.answers[b[side === "A" ? B.answerA : B.answerB]];
    var won = b[B.verdict] === (side === "A" ? "model_a" : "model_b");
    var box = make("div", "answer" + (won ? " won" : ""));
    box.appendChild(make("h4", null, side + ": " + data.models[b[side === "A" ? B.a : B.b]] + (won ? "  ✓ winner" : "")));
    box.appendChild(make("pre", "text", answer[0]));
    var meta = [answer[3] + " tokens", answer[2] ? "stopped by itself" : "hit the token limit"];
    var score = b[side === "A" ? B.scoreA : B.scoreB];
    if (score !== null && score !== undefined) meta.push("judge score " + (+score).toFixed(3));
    var note = shortenedNote(answer[0].length, answer[1], "answer");
    if (note) meta.push(note);
    box.appendChild(make("div", "meta", meta.join(" · ")));
    return box;
  }

  function battleCard(i) {
    var b = data.battles[i], verdict = b[B.verdict];
    var card = make("article", "battle");
    card.setAttribute("data-index", i);
    var head = make("header");
    head.appendChild(make("span", "muted", "#" + (i + 1) + " · " + data.tags[b[B.tag]] + " · prompt " + b[B.promptId]));
    head.appendChild(make("span", null, data.models[b[B.a]] + "  vs  " + data.models[b[B.b]]));
    var label = verdict === "model_a" ? data.models[b[B.a]] + " wins" : verdict === "model_b" ? data.models[b[B.b]] + " wins"
      : verdict === "tie" ? "tie" : verdict === "error" ? "judge error" : "not judged yet";
    head.appendChild(make("span", "verdict " + (verdict || "none"), label));
    card.appendChild(head);
    var prompt = make("div", "prompt");
    data.prompts[b[B.prompt]].forEach(function (m) {
      var line = make("div");
      line.appendChild(make("span", "role", m[0]));
      line.appendChild(make("pre", "text", m[1]));
      var note = shortenedNote(m[1].length, m[2], "prompt");
      if (note) line.appendChild(make("div", "meta", note));
      prompt.appendChild(line);
    });
    card.appendChild(prompt);
    var answers = make("div", "answers");
    answers.appendChild(answerBox("A", b));
    answers.appendChild(answerBox("B", b));
    card.appendChild(answers);
    if (b[B.judgment] >= 0) {
      var j = data.judgments[b[B.judgment]], judge = make("div", "judge");
      judge.appendChild(make("div", "explanation", "Judge: " + (j[0] || "(no explanation)")));
      var details = make("details");
      details.appendChild(make("summary", null, "raw judge output"));
      details.appendChild(make("pre", "text", j[1]));
      var note = shortenedNote(j[1].length, j[2], "output");
      if (note) details.appendChild(make("div", "meta", note));
      judge.appendChild(details);
      card.appendChild(judge);
    }
    return card;
  }

  function render() {
    var list = el("battle-list"), total = state.matches.length;
    var pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * PAGE_SIZE, end = Math.min(total, start + PAGE_SIZE);
    list.textContent = "";
    state.matches.slice(start, end).forEach(function (i) { list.appendChild(battleCard(i)); });
    el("battle-count").textContent = total + " of " + data.battles.length + " battles match" +
      (total ? " · showing " + (start + 1) + "–" + end + " (page " + (state.page + 1) + " of " + pages + ")" : "");
    el("battle-count").setAttribute("data-matches", total);
    el("page-prev").disabled = state.page === 0;
    el("page-next").disabled = state.page >= pages - 1;
  }

  ["filter-opponent", "filter-stage", "filter-verdict"].forEach(function (id) { el(id).addEventListener("change", applyFilters); });
  el("filter-text").addEventListener("input", applyFilters);
  el("page-prev").addEventListener("click", function () { state.page -= 1; render(); });
  el("page-next").addEventListener("click", function () { state.page += 1; render(); });
  applyFilters();
})();
