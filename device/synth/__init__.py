"""The synthetic data engine (seed 004): Bezier crease candidates, the palm generation model,
full hands seen by several cameras, transmission-sensor frames and attack species, and the
synthetic frame source the demo hands to the gate.  numpy + OpenCV + onnxruntime only."""
