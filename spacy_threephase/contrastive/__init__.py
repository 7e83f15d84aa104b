"""Phase 2: supervised contrastive learning (Siamese encoder, cosine MSE or SupCon).

Modules, one job each: `corpus` (read the labelled train/dev files), `labels` (pair scores
between label sets), `imbalance` (oversample rare classes with stop-word-deletion variants),
`pairs` (shuffled-copies pair sampling), `losses/` (one loss per file), `embedding`
(texts -> pooled vectors), `selection` (dev metrics for model selection) and `train`
(the driver behind `spacy-threephase contrastive`).
"""
