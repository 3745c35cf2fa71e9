"""Whole networks: import, optimise, fuse into tasks, build and run (Ansor paper section 6
and 7.3: a network is a set of subgraphs, each tuned as one task).

The data flow, one module (or package) each:

- ``graph``: the graph IR (``Graph``, ``Node``, ``TensorType``), its printer and type
  inference; ``ops``: the operator table every other module dispatches through;
- ``frontend.onnx``: ``from_onnx`` (ONNX opsets 13 to 21);
- ``reference``: the numpy executor of a whole graph, the oracle;
- ``passes``: graph -> graph rewrites in one ordered list (``optimize``);
- ``fusion`` and ``tasks``: fused subgraphs (``Subgraph``) and ``extract_tasks``;
- ``default_schedule``: the schedule of a task that has no tuning record;
- ``memory_plan`` and ``executor``: ``build_network`` and the ``Network`` it returns;
- ``export``: one shared object with a C entry point, for the host or a board;
- ``zoo`` and ``onnx_writer``: the five benchmark networks, in the graph IR and as ONNX.
"""
