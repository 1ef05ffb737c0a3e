"""Run `python -m tf2onnx.convert` under numpy 2.

tf2onnx 1.17.0 still calls `np.product` and `np.bool`, both removed in numpy 2.
This wrapper restores the two aliases and then runs the converter's CLI unchanged:

    python models/tools/tf2onnx_compat.py --tfjs model.json --output model.onnx --opset 17
"""
import runpy

import numpy as np

np.product = np.prod
np.bool = bool

runpy.run_module("tf2onnx.convert", run_name="__main__", alter_sys=True)
