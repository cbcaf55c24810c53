"""The fast preset packs rows without padding. On the CPU demo model: packing changes nothing but speed."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def demo(built_demo_model):  # noqa: ANN001, ANN201
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medcot_ui.data.load import prepare
    from medcot_ui.training.presets import quick_demo

    tokenizer = AutoTokenizer.from_pretrained(built_demo_model)
    model = AutoModelForCausalLM.from_pretrained(built_demo_model, attn_implementation="sdpa").eval()
    texts = prepare(quick_demo().data, tokenizer).train_texts[:6]
    return model, tokenizer, texts


def test_packed_rows_never_attend_to_each_other_in_a_training_forward(demo, home) -> None:  # noqa: ANN001
    from medcot_ui.training.models import load_for_training
    from medcot_ui.training.presets import quick_demo

    _, tokenizer, texts = demo
    # the model exactly as the training process loads it (LoRA applied; its B matrices start at zero)
    model = load_for_training(quick_demo().with_overrides({"training.packing": True})).model
    rows = [tokenizer(t)["input_ids"] for t in texts[:3]]
    packed = torch.tensor([sum(rows, [])])
    # position ids restart at every row: this is how the padding-free collator marks row boundaries
    positions = torch.tensor([[p for r in rows for p in range(len(r))]])
    model.train()  # as in a training step (dropout is 0 in this model, so outputs stay deterministic)
    with torch.no_grad():
        together = model(input_ids=packed, position_ids=positions).logits[0]
        start = 0
        for r in rows:
            alone = model(input_ids=torch.tensor([r])).logits[0]
            torch.testing.assert_close(together[start:start + len(r)], alone, atol=1e-4, rtol=1e-4)
            start += len(r)


def test_the_loss_over_the_same_rows_is_the_same_packed_or_padded(demo, tmp_path) -> None:  # noqa: ANN001
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, texts = demo
    losses = {}
    for packing in (False, True):
        args = SFTConfig(output_dir=str(tmp_path / str(packing)), packing=packing, max_length=8192,
                         per_device_eval_batch_size=len(texts), report_to=[], use_cpu=True,
                         dataset_text_field="text", disable_tqdm=True)
        trainer = SFTTrainer(model=model, processing_class=tokenizer, args=args,
                             train_dataset=Dataset.from_dict({"text": texts}),
                             eval_dataset=Dataset.from_dict({"text": texts}))
        if packing:
            assert len(trainer.eval_dataset) < len(texts), "the rows were really packed together"
        losses[packing] = trainer.evaluate()["eval_loss"]
    # The same tokens and targets; fp32 sums in another order (one packed row vs a padded batch) move the mean by
    # a few parts in 10,000 on the format-trained demo model.
    assert losses[True] == pytest.approx(losses[False], rel=5e-4)
