"""Every onnxruntime session of the gate asks for exact int8 products
(device/models/ort_session.py): U8S8 kernels saturate on x86 CPUs without VNNI."""
import numpy as np

from device.models.ort_session import EXACT_INT8, session_options


def test_session_options_ask_for_exact_int8_products():
    so = session_options(2, arena=False)
    assert so.get_session_config_entry(EXACT_INT8[0]) == "1"
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    assert not so.enable_cpu_mem_arena
    assert session_options().enable_cpu_mem_arena


def test_shipped_int8_file_agrees_with_its_reference_on_any_cpu():
    """The int8 presence file through Model (the gate's session) gives the same p(hand) as a
    session with the exact option set by hand: the option reaches the gate's sessions."""
    import onnxruntime as ort

    from device.models.model import DEFAULT_MODELS_DIR, Model
    m = Model("presence_nir_int8.onnx", threads=1)
    so = ort.SessionOptions()
    so.add_session_config_entry(*EXACT_INT8)
    so.intra_op_num_threads = 1
    ref = ort.InferenceSession(str(DEFAULT_MODELS_DIR / "presence_nir_int8.onnx"), so,
                               providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 1, tuple(
        d if isinstance(d, int) else 1 for d in ref.get_inputs()[0].shape)).astype(np.float32)
    got = m(**{m.inputs[0]: x})[m.outputs[0]]
    want = ref.run(None, {ref.get_inputs()[0].name: x})[0]
    assert np.array_equal(got, want)


def test_int8_report_reads_the_graph_the_gate_runs(monkeypatch):
    """tools.train.sensor_quant.optimized_graph ("the graph onnxruntime actually runs") asks
    for the exact int8 option too: on x86 CPUs without VNNI the option rewrites the int8
    weights (S8 -> U8), so without it the report describes a graph the gate does not run."""
    import onnxruntime as ort
    import pytest

    from tools.train import sensor_quant
    seen = []

    class Stop(Exception):
        pass

    def fake(path, so, providers=None):
        seen.append(so)
        raise Stop
    monkeypatch.setattr(ort, "InferenceSession", fake)
    with pytest.raises(Stop):
        sensor_quant.optimized_graph("x.onnx", threads=1)
    assert seen and seen[0].get_session_config_entry(EXACT_INT8[0]) == "1"
    assert seen[0].optimized_model_filepath.endswith("optimized.onnx")
