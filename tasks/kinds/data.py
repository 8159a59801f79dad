"""DATA_ANALYSIS: one CSV or JSON file profiled and grouped; a narrative of the figures
when the task has a prompt."""

from tasks.data_analysis_params import DataParams
from tasks.kinds.kind import InputFile, Kind

KIND = Kind(
    name="DATA_ANALYSIS",
    order=2,
    work="tasks.worker.bodies.data_analysis:analyse_data",
    summary="profile and group a CSV or JSON table (a narrative if asked)",
    prompt_help="asks for a narrative of the figures",
    params=DataParams,
    params_help="{format, encoding, delimiter, groupBy: [{by: [column], aggregations: "
    "{column: [sum|mean|...]}}], topValues}",
    input_file=InputFile(
        what="a CSV or JSON file", suffixes=frozenset({".csv", ".tsv", ".json", ".txt"})
    ),
)
