"""ChatLocal with a local vision-language model: a tiny randomly initialised LLaVA (CLIP vision
tower + 2-layer Qwen2) built offline, saved, and loaded through the same code path users hit."""

from __future__ import annotations

import pytest
import torch
from langchain_core.messages import HumanMessage
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from langchain_chatchat.chat_models.local import ChatLocal
from langchain_chatchat.workers.errors import BadRequestError
from langchain_chatchat.workers.local.vision import LocalVisionWorker

from .conftest import data_url, image_bytes

_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- for part in message.content %}{%- if part.type == 'image' %}{{- '<image>' }}"
    "{%- else %}{{- part.text }}{%- endif %}{%- endfor %}{{- '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> str:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(["What is in this picture? A red square on white."] * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>"},
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
        chat_template=_TEMPLATE,
        image_token="<image>",
    )
    ids = tokenizer.convert_tokens_to_ids
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            image_size=28,
            patch_size=14,
            projection_dim=32,
        ),
        text_config=Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        ),
        image_token_id=ids("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids("<|im_end|>")
    model.generation_config.pad_token_id = ids("<|endoftext|>")
    path = tmp_path_factory.mktemp("tiny-llava")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def _ask(picture: bytes) -> list[HumanMessage]:
    return [
        HumanMessage(
            content=[
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image",
                    "base64": data_url(picture).split(",")[1],
                    "mime_type": "image/png",
                },
            ]
        )
    ]


def test_vision_directory_gets_the_vision_worker(tiny_vlm):
    llm = ChatLocal(model=tiny_vlm, max_tokens=6)
    assert isinstance(llm.worker, LocalVisionWorker)
    reply = llm.invoke(_ask(image_bytes("PNG", (64, 48))))
    assert reply.usage_metadata["output_tokens"] >= 1
    # the image's 4 patches and CLS token are spliced into the prompt
    assert reply.usage_metadata["input_tokens"] > 5
    assert reply.response_metadata["finish_reason"] in ("stop", "length")


def test_the_image_changes_the_prompt_the_model_sees(tiny_vlm):
    llm = ChatLocal(model=tiny_vlm, max_tokens=4)
    text_only = llm.invoke("What is in this picture?")
    with_image = llm.invoke(_ask(image_bytes("PNG", (64, 48))))
    assert with_image.usage_metadata["input_tokens"] == text_only.usage_metadata["input_tokens"] + 5
    # the processor's image placeholder, once per image feature, shown apart from the text
    assert with_image.usage_metadata["input_token_details"] == {"image": 5}
    assert "input_token_details" not in text_only.usage_metadata


def test_streaming_matches_invoke_and_is_deterministic(tiny_vlm):
    llm = ChatLocal(model=tiny_vlm, max_tokens=8)
    picture = image_bytes("PNG", (40, 40), "blue")
    chunks = list(llm.stream(_ask(picture)))
    assert "".join(c.content for c in chunks) == llm.invoke(_ask(picture)).content
    assert sum(1 for c in chunks if c.usage_metadata) == 1


async def test_async(tiny_vlm):
    llm = ChatLocal(model=tiny_vlm, max_tokens=3)
    reply = await llm.ainvoke(_ask(image_bytes()))
    assert reply.usage_metadata["output_tokens"] <= 3


def test_bad_images_and_urls_are_refused(tiny_vlm):
    llm = ChatLocal(model=tiny_vlm, max_tokens=3)
    with pytest.raises(BadRequestError, match="image URLs are not accepted"):
        llm.invoke([HumanMessage(content=[{"type": "image", "url": "https://x/cat.png"}])])
    with pytest.raises(BadRequestError, match="not a recognised image"):
        llm.invoke(
            [HumanMessage(content=[{"type": "image_url", "image_url": {"url": data_url(b"no")}}])]
        )


def test_text_only_local_models_refuse_images(tmp_path):
    from tests.local.tiny_models import build_tiny_chat_model

    path = build_tiny_chat_model(tmp_path / "tiny-chat")
    llm = ChatLocal(model=str(path), max_tokens=3)
    with pytest.raises(BadRequestError, match="accept only text content"):
        llm.invoke(_ask(image_bytes()))
