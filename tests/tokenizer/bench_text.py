#!/usr/bin/env python3
"""Deterministic text for the tokenizer benchmark and the 1 MB golden case.

    python3 tests/tokenizer/bench_text.py --bytes N --seed S [--out FILE]

writes documents (English-like prose, multilingual sentences, numbers, code, chat-like turns,
whitespace runs, emoji) separated by the ASCII record separator U+001E, which no document
contains, as UTF-8, until at least N bytes are written (the last document is finished, so the
file is a little longer). Only random.Random(seed) with integer seeding, random() and randrange()
are used: their sequences are fixed across CPython 3 versions, so the same arguments give the
same bytes everywhere (make_golden.py records the sha256 of what it tokenized; the C++ tests
check it).
"""
import argparse
import os
import random
import sys

SEPARATOR = "\x1e"

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at "
         "which but have an they you were her she there been one all we their has would when if "
         "so no will can more who what up about said out them may into than some time could these "
         "two other then do first any like my now over such our man me even most made after also "
         "did many before must through back years where much your way well down should because "
         "each just those people how too little state good very make world still own see men work "
         "long get here between both life being under never day same another know while last might "
         "us great old year off come since against go came right used take three tokenizer model "
         "checkpoint quantization tensor shard vocabulary Llama Qwen Mistral GPU CUDA throughput "
         "don't isn't we've they're I'm you'll she'd it's O'Neil rock'n'roll e-mail co-operate "
         "naïve café résumé Zürich São Paulo Ångström").split()

SENTENCES = (
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le cœur a ses raisons que la raison ne connaît point.",
    "¿Dónde está la biblioteca? ¡Qué día tan bonito!",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Η γλώσσα μου έδωσαν ελληνική· το σπίτι φτωχικό.",
    "我能吞下玻璃而不伤身体。今天天气很好，我们去公园散步吧！",
    "私はガラスを食べられます。それは私を傷つけません。カタカナとひらがな。",
    "나는 유리를 먹을 수 있어요. 그래도 아프지 않아요.",
    "أنا قادر على أكل الزجاج و هذا لا يؤلمني.",
    "אני יכול לאכול זכוכית וזה לא מזיק לי.",
    "मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती.",
    "ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ",
    "Tôi có thể ăn thủy tinh mà không hại gì.",
    "நான் கண்ணாடி சாப்பிடுவேன், அதனால் எனக்கு ஒரு கேடும் வராது.",
    "Mogę jeść szkło i mi nie szkodzi. Zażółć gęślą jaźń.",
    "Ég get etið gler án þess að meiða mig.",
    "მინას ვჭამ და არა მტკივა.",
    "Կրնամ ապակի ուտել և ինծի անհանգիստ չըներ։",
    "ཤེལ་སྒོ་ཟ་ནས་ང་ན་གི་མ་རེད།",
    "ᐊᓕᒍᖅ ᓂᕆᔭᕌᖓᒃᑯ ᓱᕋᙱᑦᑐᓐᓇᖅᑐᖓ",
    "Emoji: 🦙🚀 👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🇯🇵 1️⃣ ✅",
    "Math: ∀x∈ℝ, ∃y: x² + y² ≤ r²; ∑ᵢ aᵢ = ∫₀¹ f(t) dt ≈ 3.14159",
)

CODE = (
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "#include <stdio.h>\nint main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "{\"name\": \"ckpt\", \"version\": [1, 2, 3], \"ok\": true, \"ratio\": 0.125}\n",
    "for f in *.safetensors; do sha256sum \"$f\" >> SUMS; done\r\n",
    "<div class=\"note\">&lt;b&gt;Bold&lt;/b&gt; &amp; <span>text</span></div>\n",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name DESC LIMIT 10;\n",
    "    if (x != nullptr && *x == '\\0') { return -1; }  // guard\n",
)

SPECIALS = ("<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>",
            "</think>")

WHITESPACE = (" ", "  ", "\n", "\n\n", "\r\n", "\t", " \t ", "\n    ", "\u3000", "\u00a0", "   \n\n\t")


def number(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 12)))
    if kind == 1:
        return f"{rng.randrange(100000)}.{rng.randrange(1000):03d}"
    if kind == 2:
        return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    return "".join(str(rng.randrange(10)) for _ in range(rng.randrange(13, 40)))


def prose(rng, n_words):
    out = []
    for i in range(n_words):
        w = WORDS[rng.randrange(len(WORDS))]
        r = rng.random()
        if r < 0.05:
            w = w.capitalize()
        elif r < 0.07:
            w = w.upper()
        elif r < 0.10:
            w = number(rng)
        out.append(w)
        r = rng.random()
        if r < 0.06:
            out.append(", ")
        elif r < 0.10:
            out.append(". ")
        elif r < 0.11:
            out.append("? ")
        elif r < 0.12:
            out.append(WHITESPACE[rng.randrange(len(WHITESPACE))])
        else:
            out.append(" ")
    return "".join(out).strip(" ") + ".\n"


def document(rng):
    parts = []
    for _ in range(rng.randrange(1, 8)):
        r = rng.random()
        if r < 0.55:
            parts.append(prose(rng, rng.randrange(5, 120)))
        elif r < 0.75:
            parts.append(SENTENCES[rng.randrange(len(SENTENCES))] + "\n")
        elif r < 0.90:
            parts.append(CODE[rng.randrange(len(CODE))])
        elif r < 0.95:
            parts.append(SPECIALS[rng.randrange(len(SPECIALS))] + prose(rng, rng.randrange(1, 10)))
        else:
            parts.append(WHITESPACE[rng.randrange(len(WHITESPACE))] * rng.randrange(1, 6))
    return "".join(parts)


def generate(n_bytes, seed):
    """Yields documents until they and their separators reach n_bytes of UTF-8."""
    rng = random.Random(seed)
    total = 0
    while total < n_bytes:
        doc = document(rng)
        size = len(doc.encode("utf-8"))
        total += size + 1
        yield doc


def text(n_bytes, seed):
    return SEPARATOR.join(generate(n_bytes, seed))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", default="-")
    a = ap.parse_args()
    data = text(a.bytes, a.seed).encode("utf-8")
    if a.out == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(a.out + ".tmp", "wb") as f:
            f.write(data)
        os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
