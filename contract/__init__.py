"""The contracts shared by training and serving, defined once. Imported by `training/` and `app/`; imports neither (nor
torch, nor FastAPI): standard library, numpy and pandas only. More: docs/design.md#contract.
"""
