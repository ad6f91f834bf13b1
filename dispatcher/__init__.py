"""dispatcher: field reports in, routed by region, pushed to rescue-team leaders.

The pipeline, one module or subpackage per stage:
intake -> locate -> route -> group -> notify, over a store, driven by the scheduler.
"""

__version__ = "0.1.0"
