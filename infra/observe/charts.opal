// model-observability in Observe: the CloudWatch dashboard's charts (template.yaml,
// QualityDashboard) as OPAL, one worksheet stage per chart. Input: the dataset of the
// datastream the metrics and rollup functions post to (infra/observe/README.md).
//
// Not run here (no Observe account on the build machine): paste a section into a
// worksheet stage and check the column names against a few rows first.
//
// Every section starts from the same two filters: our ingest path (a tag: EXTRA.path)
// and one kind of observation (FIELDS.kind). -1 means "undefined" in the COCO figures
// (no ground truth): such rows are filtered out, as the EMF lines leave the value out.

// --- chart: AP50, AP, AP75, AR100 of hourly windows, per model version ---------------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "window_metrics"
make_col granularity:string(FIELDS.window.granularity),
    window_start:parse_isotime(string(FIELDS.window.start)),
    model_name:string(FIELDS.model.name),
    model_version:string(FIELDS.model.version),
    ap:float64(FIELDS.coco.AP),
    ap50:float64(FIELDS.coco.AP50),
    ap75:float64(FIELDS.coco.AP75),
    ar100:float64(FIELDS.coco.AR100)
// -1 (undefined) comes together for all four: a window without ground truth.
filter granularity = "hour" and ap50 >= 0
// A window is recomputed every 5 minutes while labels arrive: chart it at its start.
set_valid_from options(max_time_diff:30d), window_start
timechart 1h, ap50:avg(ap50), ap:avg(ap), ap75:avg(ap75), ar100:avg(ar100), group_by(model_name, model_version)

// --- chart: AP50 of daily windows (what the CloudWatch alarm watches) -----------------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "window_metrics"
make_col granularity:string(FIELDS.window.granularity),
    window_start:parse_isotime(string(FIELDS.window.start)),
    model_version:string(FIELDS.model.version),
    ap50:float64(FIELDS.coco.AP50)
filter granularity = "day" and ap50 >= 0
set_valid_from options(max_time_diff:30d), window_start
timechart 1d, ap50:avg(ap50), group_by(model_version)

// --- chart: precision, recall, F1 at the serving threshold, hourly windows -------------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "window_metrics"
make_col granularity:string(FIELDS.window.granularity),
    window_start:parse_isotime(string(FIELDS.window.start)),
    model_version:string(FIELDS.model.version),
    precision:float64(FIELDS.at_serving_threshold.precision),
    recall:float64(FIELDS.at_serving_threshold.recall),
    f1:float64(FIELDS.at_serving_threshold.f1)
filter granularity = "hour"
set_valid_from options(max_time_diff:30d), window_start
timechart 1h, precision:avg(precision), recall:avg(recall), f1:avg(f1), group_by(model_version)

// --- chart: labelling, hourly windows: images labelled, captures, coverage, lag --------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "window_metrics"
make_col granularity:string(FIELDS.window.granularity),
    window_start:parse_isotime(string(FIELDS.window.start)),
    model_version:string(FIELDS.model.version),
    images_labelled:int64(FIELDS.images_labelled),
    captures:int64(FIELDS.captures_in_window),
    label_coverage:float64(FIELDS.label_coverage),
    mean_label_lag_s:float64(FIELDS.mean_label_lag_s)
filter granularity = "hour"
set_valid_from options(max_time_diff:30d), window_start
timechart 1h, images_labelled:max(images_labelled), captures:max(captures),
    label_coverage:avg(label_coverage), mean_label_lag_s:avg(mean_label_lag_s), group_by(model_version)

// --- chart: AP50 per class, daily windows ----------------------------------------------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "window_metrics"
make_col granularity:string(FIELDS.window.granularity),
    window_start:parse_isotime(string(FIELDS.window.start)),
    model_version:string(FIELDS.model.version),
    per_class:object(FIELDS.coco.per_class)
filter granularity = "day"
// per_class is {"<class>": {"AP": .., "AP50": ..}}: one row per class.
flatten_single per_class
make_col class_name:_c_per_class_path, ap50:float64(_c_per_class_value.AP50)
filter ap50 >= 0
set_valid_from options(max_time_diff:30d), window_start
timechart 1d, ap50:avg(ap50), group_by(model_version, class_name)

// --- chart: per image: mean IoU, TP/FP/FN, label lag ------------------------------------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "image_eval"
make_col captured_at:parse_isotime(string(FIELDS.captured_at)),
    model_version:string(FIELDS.model.version),
    mean_iou:float64(FIELDS.at_serving_threshold.mean_iou),
    tp:int64(FIELDS.at_serving_threshold.tp),
    fp:int64(FIELDS.at_serving_threshold.fp),
    fn:int64(FIELDS.at_serving_threshold.fn),
    label_lag_s:float64(FIELDS.label_lag_s)
// Stamped with the capture time, like the EMF lines: a late label updates the past.
set_valid_from options(max_time_diff:30d), captured_at
timechart 1h, mean_iou:avg(mean_iou), tp:sum(tp), fp:sum(fp), fn:sum(fn),
    label_lag_p90:percentile(label_lag_s, 0.9), group_by(model_version)

// --- chart: per image: AP50 (mean over labelled images with ground truth) ----------------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "image_eval"
make_col captured_at:parse_isotime(string(FIELDS.captured_at)),
    model_version:string(FIELDS.model.version),
    ap50:float64(FIELDS.ap50)
filter ap50 >= 0
set_valid_from options(max_time_diff:30d), captured_at
timechart 1d, ap50:avg(ap50), group_by(model_version)

// --- label-free (issue 16): the rollup sends each window's drift and AP50 estimate as
// FIELDS.kind = "window_drift" (crates/pipeline/src/observe.rs: a WindowDrift, beside the
// window's "window_metrics" row): "drift": {"score", "alert", "features", ...} or null (no
// reference yet) and "estimated_ap50": {"value", "low", "high"} or null (no calibration
// yet), as `modelobs metrics --json` prints them. The sections take both kinds, so they
// also read the fields should they ride in "window_metrics"; a row without them is null
// here and left out, as the EMF lines leave them out.

// --- chart: drift score of hourly windows, per model version (what the drift alarm watches) --
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "window_drift" or string(FIELDS.kind) = "window_metrics"
make_col granularity:string(FIELDS.window.granularity),
    window_start:parse_isotime(string(FIELDS.window.start)),
    model_name:string(FIELDS.model.name),
    model_version:string(FIELDS.model.version),
    drift_score:float64(FIELDS.drift.score)
// 0 = nothing moved, 3 = the alert line (alpha 1e-3 after Bonferroni), capped at 16.
filter granularity = "hour" and not is_null(drift_score)
set_valid_from options(max_time_diff:30d), window_start
// max, not avg: DriftAlarm takes the Maximum of the hour's recomputations.
timechart 1h, drift_score:max(drift_score), group_by(model_name, model_version)

// --- table: windows that alerted, with the features that moved ----------------------------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
filter string(FIELDS.kind) = "window_drift" or string(FIELDS.kind) = "window_metrics"
// drifted_features, e.g. "luminance,contrast": the EMF line's DriftedFeatures.
make_col granularity:string(FIELDS.window.granularity),
    window_start:parse_isotime(string(FIELDS.window.start)),
    model_version:string(FIELDS.model.version),
    drift_score:float64(FIELDS.drift.score),
    drift_alert:bool(FIELDS.drift.alert),
    drifted_features:array_to_string(array(FIELDS.drift.features), ",")
filter drift_alert = true
set_valid_from options(max_time_diff:30d), window_start
// A window is recomputed every 5 minutes while captures arrive: one row per window and set
// of features, with its highest score and how many recomputations alerted with that set.
statsby drift_score:max(drift_score), recomputations:count(),
    group_by(granularity, window_start, model_version, drifted_features)
sort desc(window_start)

// --- chart: estimated AP50 (label-free, with its band) vs measured AP50, daily windows ------
filter OBSERVATION_KIND = "http" and string(EXTRA.path) = "/model-observability"
// The estimate comes in "window_drift" rows, the measured AP50 in "window_metrics" rows:
// each row has one side, the other is null, and avg leaves nulls out.
filter string(FIELDS.kind) = "window_drift" or string(FIELDS.kind) = "window_metrics"
make_col granularity:string(FIELDS.window.granularity),
    window_start:parse_isotime(string(FIELDS.window.start)),
    model_version:string(FIELDS.model.version),
    ap50:float64(FIELDS.coco.AP50),
    estimated_ap50:float64(FIELDS.estimated_ap50.value),
    estimated_ap50_low:float64(FIELDS.estimated_ap50.low),
    estimated_ap50_high:float64(FIELDS.estimated_ap50.high)
filter granularity = "day"
// Not `filter ap50 >= 0`: the estimate matters most for windows whose labels have not come
// in yet. A measured -1 (no ground truth) becomes null instead.
make_col ap50:if(ap50 >= 0, ap50, float64_null())
filter not is_null(ap50) or not is_null(estimated_ap50)
set_valid_from options(max_time_diff:30d), window_start
timechart 1d, estimated_ap50:avg(estimated_ap50), estimated_ap50_low:avg(estimated_ap50_low),
    estimated_ap50_high:avg(estimated_ap50_high), ap50:avg(ap50), group_by(model_version)
