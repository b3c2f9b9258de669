// The course quizzes: check an answer in the page, then show the explanation.
(function () {
  "use strict";
  function parseNumber(text) {
    var t = text.replace(/[,_\s]/g, "");
    var scale = 1;
    if (t.endsWith("%")) { t = t.slice(0, -1); scale = 0.01; }
    if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) { return NaN; }
    return parseFloat(t) * scale;
  }
  function check(box) {
    var result = box.querySelector(".quiz-result");
    var explanation = box.querySelector(".quiz-explanation");
    var right;
    if (box.dataset.kind === "choice") {
      var picked = box.querySelector("input[type=radio]:checked");
      if (!picked) { result.textContent = "Pick an option first."; result.hidden = false; return; }
      right = picked.value === box.dataset.answer;
    } else {
      var given = parseNumber(box.querySelector(".quiz-number").value);
      if (isNaN(given)) { result.textContent = "Type a number."; result.hidden = false; return; }
      var expected = parseFloat(box.dataset.answer);
      var tol = parseFloat(box.dataset.tolerance);
      right = Math.abs(given - expected) <= Math.max(tol * Math.abs(expected), 1e-12);
    }
    result.textContent = right ? "Right." : "Not quite: the answer is " + box.dataset.answerText + ".";
    result.className = "quiz-result " + (right ? "quiz-right" : "quiz-wrong");
    result.hidden = false;
    explanation.hidden = false;
  }
  function init() {
    document.querySelectorAll(".quiz-question .quiz-check").forEach(function (button) {
      button.addEventListener("click", function () { check(button.closest(".quiz-question")); });
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); }
  else { init(); }
})();
