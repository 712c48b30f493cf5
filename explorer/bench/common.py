"""What every section needs: the model (random weights when none can be had), an input batch."""
from __future__ import annotations

import torch

import explorer


def load(cfg, bias_free: bool) -> explorer.ZooEntry:
    """The zoo entry on cfg.device; random weights when asked or when none are available."""
    if cfg.pretrained:
        try:
            return explorer.load_model(cfg.model, bias_free=bias_free, device=cfg.device,
                                       checkpoint=cfg.checkpoint)
        except explorer.WeightsUnavailable as err:
            note = f"{cfg.model}: random weights ({err})"
            if note not in cfg.notes:
                cfg.notes.append(note)
    return explorer.load_model(cfg.model, bias_free=bias_free, pretrained=False, device=cfg.device)


def batch(cfg, entry: explorer.ZooEntry) -> tuple[torch.Tensor, torch.Tensor]:
    """cfg.batch copies of a bundled sample (resized to cfg.size) and the predicted classes."""
    from explorer.inputs.data import sample_digits, sample_photos
    if entry.spec.channels == 1:
        digits = sample_digits()["clean"]
        x = torch.stack([entry.preprocess(digits[i % len(digits), 0]) for i in range(cfg.batch)])
    else:
        photos = list(sample_photos().values())
        x = torch.stack([entry.preprocess(photos[i % len(photos)]) for i in range(cfg.batch)])
        if cfg.size and cfg.size != x.shape[-1]:
            x = torch.nn.functional.interpolate(x, size=(cfg.size, cfg.size), mode="bilinear",
                                                antialias=True, align_corners=False)
    x = x.to(cfg.device)
    with torch.no_grad():
        target = entry.module(x).argmax(1)
    return x, target


def background(cfg, entry: explorer.ZooEntry, x: torch.Tensor) -> torch.Tensor:
    """References for expected gradients: bundled training digits, or the sample photos."""
    from explorer.inputs.data import background_set
    if entry.spec.channels == 1:
        return background_set(entry)[:16].to(x.device)
    return torch.cat([x, torch.zeros_like(x[:1])])


def compare_settings(cfg, section: str = "") -> dict:
    """Arguments for ``timing.compare`` from the config."""
    from explorer.runtime.timing import CLOCKS
    def progress(done: int, fraction: float) -> None:
        cfg.progress(section, done, fraction)

    return {"progress": progress if cfg.progress is not None else None, "min_rounds": cfg.rounds, "budget_s": cfg.budget_s,
            "min_time_s": 0.001 if cfg.quick else 0.02,
            "clock": CLOCKS[cfg.clock]}
