"""The work of each task kind, run by the worker: one module per kind (the function a
kind's `work` names, e.g. `tasks.worker.bodies.image_processing:process_image`), and
the pure steps they call (`*_steps`: Pillow and pandas, bytes in and bytes out).

Loaded only when a task of the kind first runs (tasks/kinds/kind.py), so a worker
serving only text never loads Pillow or pandas. May import the worker's running-task
interface (`tasks.worker.running`), the providers and the params models."""
