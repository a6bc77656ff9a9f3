"""``lstmtext pretrain``'s Python entry with every dropout off, so that one process and several agree exactly.

    python lm_ddp_worker.py DATA OUT [--resume] [--budget SECONDS] [--epochs N]
"""

from __future__ import annotations

import argparse

from lstmtext.run.pretrain import PretrainRunConfig, pretrain_run

NO_DROPOUT = {"embed_dropout": 0.0, "input_dropout": 0.0, "hidden_dropout": 0.0, "weight_dropout": 0.0,
              "output_dropout": 0.0}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--budget", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    train = {"epochs": args.epochs, "seed": 3, "batch_size": 8, "bptt": 10, "checkpoint_every": 0,
             "time_budget_s": args.budget}
    cfg = PretrainRunConfig(data=args.data, out=args.out, preset="tiny", model=NO_DROPOUT, train=train,
                            valid_every=10, resume=args.resume, verbose=0)
    pretrain_run(cfg)
