"""Frontends: network formats in, graph IR (``ansor_py.network.graph.Graph``) out.

``frontend.onnx.from_onnx`` imports ONNX models (the ``onnx`` package is optional, so this
package imports nothing by itself: ``from ansor_py.network.frontend.onnx import from_onnx``).
"""
