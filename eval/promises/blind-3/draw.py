"""Two disjoint pools of candidate sentences for promise labelling, split by paper:
train (helper labels for training) and blind-3 (held out). Keyword-broad filter + random share;
no classifier involved."""
import json, random, re, hashlib, sys
sys.path.insert(0, "/work/main")
from bot.promises.detect import split_sentences
from bot.promises.sample import labelled_sentences, squashed, _overlaps
from bot.settings import Settings
from indexer.store import read_build
import os
os.environ["CLERK_HOME"] = "/work/evalhome2"
c = read_build(Settings.from_env().index.index_dir)
labelled = labelled_sentences()
train_rows = {json.loads(l)["sentence"] for l in open("/work/main/eval/promises/train/corpus-sentences.jsonl")}
labelled |= {squashed(s) for s in train_rows}
KEY = re.compile(r"\b(will|would|shall|to be|undert(ook|ake)|agreed to|offered|circulat\w*|provid\w*|report\w* back|bring|brought|come back|return\w*|writ\w*|respond\w*|follow[- ]?up|share\w*|send|sent|brief\w*|action|confirm\w*|clarif\w*|look into|update\w*|in due course|next meeting|outside (of )?the meeting|contact|inform\w*|detail\w*|requested|asked)\b", re.I)
seen = set(); pools = {"train": [], "blind3": []}; rand = {"train": [], "blind3": []}
for ch in c.chunks:
    d = c.documents[ch.doc_id]
    side = "blind3" if int(hashlib.sha256(d.source.encode()).hexdigest(), 16) % 4 == 0 else "train"
    sents = split_sentences(ch.text)
    for i, s in enumerate(sents):
        k = squashed(s)
        if len(s.split()) < 5 or k in seen or _overlaps(k, labelled): continue
        seen.add(k)
        row = {"source": d.source, "page": ch.page, "sentence": s,
               "before": sents[i-1] if i else "", "after": sents[i+1] if i + 1 < len(sents) else ""}
        (pools if KEY.search(s) else rand)[side].append(row)
rng = random.Random(5)
for side, n_key, n_rand in (("train", 720, 80), ("blind3", 170, 20)):
    rows = rng.sample(pools[side], min(n_key, len(pools[side]))) + rng.sample(rand[side], n_rand)
    rng.shuffle(rows)
    with open(f"/work/promise-pools/{side}.jsonl", "w") as f:
        for r in rows: f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(side, len(pools[side]), len(rand[side]), len(rows), len({r['source'] for r in rows}))
