"""Hot reload: admin endpoint and --watch swap in a checked model; any failure keeps the old one serving."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
import torch
from svc_helpers import running
from svc_tiny import encode, tiny_predictor

from lstmtext.predictor import Predictor
from lstmtext.service import ServiceConfig, create_app

TOKEN = "s3cret-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def _load(path: str) -> Predictor:
    """Test loader: 'seed-N' is a good model, 'missing' fails to load, 'nan' loads but fails the smoke check."""
    if path == "missing":
        raise FileNotFoundError(f"{path}: no such checkpoint folder")
    if path == "nan":
        class NaN(torch.nn.Module):
            def forward(self, x):
                return torch.full((x.shape[0], 1), float("nan"))

        return Predictor(NaN(), encode, maxlen=5, version="nan")
    time.sleep(0.2)  # loading takes a while: requests must keep being answered meanwhile
    return tiny_predictor(seed=int(path.split("-")[1]), version=path)


def _app(**kw):
    return create_app(tiny_predictor(version="seed-0"), ServiceConfig(admin_token=TOKEN, **kw), load=_load)


def test_reload_swaps_and_bad_reloads_keep_the_old_model():
    async def main():
        async with running(_app()) as c:
            out = {"no_token": await c.post("/admin/reload", json={"path": "seed-1"}),
                   "bad_token": await c.post("/admin/reload", json={"path": "seed-1"},
                                             headers={"authorization": "Bearer wrong"}),
                   "ok": await c.post("/admin/reload", json={"path": "seed-1"}, headers=AUTH),
                   "after_ok": await c.post("/v1/predict", json={"texts": ["good fun"]}),
                   "missing": await c.post("/admin/reload", json={"path": "missing"}, headers=AUTH),
                   "nan": await c.post("/admin/reload", json={"path": "nan"}, headers=AUTH),
                   "after_bad": await c.post("/v1/predict", json={"texts": ["good fun"]}),
                   "ready": await c.get("/readyz"),
                   "metrics": await c.get("/metrics")}
            return out

    r = asyncio.run(main())
    assert r["no_token"].status_code == 401 and r["bad_token"].status_code == 401
    assert r["ok"].status_code == 200
    assert r["ok"].json() == {"status": "reloaded", "source": "seed-1", "model_version": "seed-1",
                              "previous_version": "seed-0"}
    want = tiny_predictor(seed=1).predict(["good fun"])[0].to_dict()
    assert r["after_ok"].json() == {"predictions": [want], "model_version": "seed-1"}
    assert r["missing"].status_code == 422
    assert "still serving version seed-1" in r["missing"].json()["detail"]
    assert "missing: no such checkpoint folder" in r["missing"].json()["detail"]
    assert r["nan"].status_code == 422 and "not finite" in r["nan"].json()["detail"]
    assert r["after_bad"].json() == {"predictions": [want], "model_version": "seed-1"}
    assert r["ready"].status_code == 200
    text = r["metrics"].text
    assert 'lstmtext_model_reloads_total{result="ok"} 1.0' in text
    assert 'lstmtext_model_reloads_total{result="failed"} 2.0' in text
    assert 'lstmtext_model_info{version="seed-1"} 1.0' in text and 'version="seed-0"' not in text


def test_no_admin_token_means_no_admin_endpoint():
    async def main():
        async with running(create_app(tiny_predictor(), load=_load)) as c:
            return await c.post("/admin/reload", json={"path": "seed-1"}, headers=AUTH)

    assert asyncio.run(main()).status_code == 404


def test_reload_under_load_has_no_errors():
    async def main():
        async with running(_app()) as c:
            stop = asyncio.Event()
            statuses: list[int] = []
            versions: list[str] = []

            async def client(i: int) -> None:
                while not stop.is_set():
                    r = await c.post("/v1/predict", json={"texts": [f"the film {i}"]})
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        versions.append(r.json()["model_version"])

            clients = [asyncio.create_task(client(i)) for i in range(16)]
            await asyncio.sleep(0.2)
            reloads = [await c.post("/admin/reload", json={"path": f"seed-{k}"}, headers=AUTH) for k in (1, 2, 3)]
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*clients)
            return reloads, statuses, versions

    reloads, statuses, versions = asyncio.run(main())
    assert [r.status_code for r in reloads] == [200, 200, 200]
    assert len(statuses) > 50 and set(statuses) == {200}  # 0 non-2xx during three reloads
    assert {"seed-0", "seed-3"} <= set(versions) and versions[-1] == "seed-3"


def test_watch_reloads_when_the_manifest_changes(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()

    def load_from_folder(path: str) -> Predictor:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest["seed"] < 0:
            raise ValueError("corrupt manifest")
        return tiny_predictor(seed=manifest["seed"], version=f"seed-{manifest['seed']}")

    (folder / "manifest.json").write_text(json.dumps({"seed": 0}))
    app = create_app(str(folder), ServiceConfig(watch_interval_s=0.05), load=load_from_folder)

    async def version(c) -> str:
        return (await c.post("/v1/predict", json={"texts": ["x"]})).json()["model_version"]

    async def wait_for(c, want: str) -> str:
        for _ in range(200):
            got = await version(c)
            if got == want:
                return got
            await asyncio.sleep(0.02)
        return got

    async def main():
        async with running(app) as c:
            first = await version(c)
            (folder / "manifest.json").write_text(json.dumps({"seed": 2}))
            second = await wait_for(c, "seed-2")
            (folder / "manifest.json").write_text(json.dumps({"seed": -1}))  # a broken new checkpoint
            await asyncio.sleep(0.3)
            third = await version(c)
            (folder / "manifest.json").write_text(json.dumps({"seed": 3}))  # fixed again: watching goes on
            fourth = await wait_for(c, "seed-3")
            ready = (await c.get("/readyz")).status_code
            failed = "lstmtext_model_reloads_total{result=\"failed\"} 1.0" in (await c.get("/metrics")).text
            return first, second, third, fourth, ready, failed

    assert asyncio.run(main()) == ("seed-0", "seed-2", "seed-2", "seed-3", 200, True)


@pytest.mark.parametrize("seed", [1, 2])
def test_reloaded_model_answers_like_its_predictor(seed):
    texts = ["a wonderful film", "awful acting", ""]

    async def main():
        async with running(_app()) as c:
            await c.post("/admin/reload", json={"path": f"seed-{seed}"}, headers=AUTH)
            return (await c.post("/v1/predict", json={"texts": texts})).json()

    body = asyncio.run(main())
    got = np.array([p["probabilities"] for p in body["predictions"]])
    np.testing.assert_array_equal(got, tiny_predictor(seed=seed).predict_proba(texts))


def test_reload_with_frozen_gc_frees_the_old_model():
    import gc
    import weakref

    first = tiny_predictor(version="seed-0")
    ref = weakref.ref(first.model)
    app = create_app(first, ServiceConfig(admin_token=TOKEN), load=_load, freeze_gc=True)
    del first

    async def main():
        async with running(app) as c:
            assert gc.get_freeze_count() > 0  # the lifespan froze the loaded objects
            r = await c.post("/admin/reload", json={"path": "seed-1"}, headers=AUTH)
            return r.status_code

    try:
        assert asyncio.run(main()) == 200
        gc.collect()
        assert ref() is None  # the replaced model was not kept alive by the frozen generation
    finally:
        gc.unfreeze()
