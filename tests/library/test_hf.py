"""Export to Hugging Face: transformers loads the folder and generates what MiniMind does."""
from __future__ import annotations

import json

import pytest
import torch

from minimind.config import preset
from minimind.data import shakespeare_text
from minimind.generate import generate
from minimind.hf import ExportError, export_with_tokenizer, load_llama
from minimind.model import MiniMindForCausalLM
from minimind.tokenizer import train_bpe


def test_an_exported_folder_generates_the_same_text_with_transformers(tmp_path):
    """LlamaForCausalLM + AutoTokenizer from the folder: same logits, same greedy text."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tok = train_bpe(shakespeare_text()[:50_000].splitlines(keepends=True), vocab_size=300)
    torch.manual_seed(0)
    model = MiniMindForCausalLM(preset("tiny", vocab_size=tok.vocab_size)).eval()
    export_with_tokenizer(model, tmp_path, tok)
    hf_tok = AutoTokenizer.from_pretrained(tmp_path)
    hf_model = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    prompt = "ROMEO: "
    ids = hf_tok(prompt, return_tensors="pt").input_ids
    assert ids.tolist() == [tok.encode(prompt)]
    with torch.no_grad():
        torch.testing.assert_close(hf_model(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-5)
    theirs = hf_model.generate(ids, max_new_tokens=12, do_sample=False)
    ours = generate(model, ids, 12, greedy=True)
    assert hf_tok.decode(theirs[0]) == tok.decode(ours[0].tolist())


@pytest.mark.parametrize("vocab_size, refusal", [
    (400_000_000, "absurdly large"),  # refused before any weights are allocated
    (3_000_000, "model.embed_tokens.weight is"),  # plausible: caught by the meta-device shapes
])
def test_a_config_json_that_does_not_fit_its_weights_is_refused_naming_why(
    tmp_path, vocab_size, refusal
):
    """A config.json whose vocab_size does not match the stored tensors is refused, saying why."""
    export_with_tokenizer(MiniMindForCausalLM(preset("tiny")), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "vocab_size": vocab_size}))
    with pytest.raises(ExportError, match=refusal):
        load_llama(tmp_path)
