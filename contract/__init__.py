"""The contracts shared by training and serving, defined once. Imported by `training/` and `app/`; imports
neither (nor torch, nor FastAPI): standard library, numpy and pandas only.

- `card`: the metadata a gatecast ONNX file carries (`ModelCard`, the conformal table), versioned.
- `signature`: the graph's inputs and outputs by name, type and axes; the exporter's names and dynamic axes
  and the server's load check both derive from it.
- `windows`: what a model accepts as input (minimum and trained window, magnitude) and how a longer series
  is cut; the lengths an export is validated on and a server warms up with.
- `covariates`: the inputs beside the values by name and role (past, future, calendar) and the calendar
  features, computed the same way by training and by the server.
- `longformat`: the user-facing `unique_id, ds, y` table (other columns: covariates), read the same way from a
  training file and from a CSV request body.
"""
