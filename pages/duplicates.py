import streamlit as st

from coreclean.analysis import explore_queries as explore
from ui import explore_grid, selection, state, widgets

analysis = state.current()
names = state.labels(analysis)
st.title("Duplicates")
if not explore.has_exploration(analysis):
    st.info("This analysis was built before the exploration stage (neighbours, duplicates): delete it and build "
            "again to add them.")
    st.stop()
log = state.current_log()
GROUPS_PER_PAGE, SHOWN_PER_GROUP, PAIRS_PER_PAGE = 8, 5, 5
MAX_KEEP_ONE = 20  # bigger groups come from chaining at a loose threshold: never removed in one click
info = analysis.meta.get("duplicates") or {}
default = float(info.get("threshold", 0.98))
space = {"fingerprint": "blurred pixel fingerprints", "embedding": "embeddings"}.get(info.get("space"), "embeddings")

controls = st.columns([2, 2, 3])
exact_only = controls[1].toggle("Exact copies only", key="exact", bind="query-params",
                                help=f"Identical {info.get('exact') or 'content'} (content hash) only.")
threshold = controls[0].number_input(
    "Similarity threshold", 0.5, 1.0, default, 0.001, format="%.3f", key="threshold", bind="query-params",
    disabled=exact_only, help=f"Similarity of the {space} at or above which two training samples are "
                              f"near-duplicates (the build used {default:g}; its measure: "
                              f"{info.get('measure', 'cosine similarity')}). Exact copies always count.")
groups = explore.duplicate_group_list(analysis, None if exact_only else threshold, exact_only)
copies = sum(len(g) for g in groups) - len(groups)
kind = "exact-copy" if exact_only else f"duplicate (similarity ≥ {threshold:.3f})"
st.write(f"**{len(groups):,}** {kind} groups in the training set, **{copies:,}** copies beyond the first of each "
         "group. Largest groups first.")


def keep_one(chosen: list[list[int]]) -> None:
    written = explore_grid.keep_first(analysis, log, chosen, state.reviewer())
    st.session_state["kept_note"] = f"{written} samples marked **remove** in the review log."


nav = st.columns([1, 3])
page = widgets.page_number(nav[0], "Page of groups", selection.page_count(len(groups), GROUPS_PER_PAGE), key="gpage")
start, stop = selection.page_bounds(len(groups), (page - 1) * GROUPS_PER_PAGE, GROUPS_PER_PAGE)
shown = [[int(i) for i in g] for g in groups[start:stop]]
small = [g for g in shown if len(g) <= MAX_KEEP_ONE]
nav[1].button(f"Keep the first of each group on this page, remove the rest ({len(small)} groups)",
              on_click=keep_one, args=(small,), disabled=not small, key="keep_page",
              help=f"Groups of more than {MAX_KEEP_ONE} samples are left out: review them one by one.")
if note := st.session_state.pop("kept_note", None):
    st.success(note)
decided = log.current()


def caption(index: int) -> str:
    decision = decided.get(index)
    return f"#{index} · {names[analysis.y_train[index]]}" + (f" · {decision.decision}" if decision else "")


for number, group in enumerate(shown, start + 1):
    with st.container(border=True):
        head = st.columns([4, 2])
        labels = sorted({widgets.plain(names[analysis.y_train[i]]) for i in group})
        clash = f" — **labels disagree**: {', '.join(labels)}" if len(labels) > 1 else f" — all {labels[0]}"
        more = f" (first {SHOWN_PER_GROUP} shown)" if len(group) > SHOWN_PER_GROUP else ""
        head[0].markdown(f"**Group {number}**: {len(group)} samples{more}{clash}")
        if len(group) <= MAX_KEEP_ONE:
            head[1].button(f"Keep #{group[0]}, remove the rest", key=f"keep_{group[0]}", on_click=keep_one,
                           args=([group],))
        else:
            head[1].caption("Too large to remove in one click: groups chain at loose thresholds; raise the "
                            "threshold or review its members (details).")
        widgets.image_grid(analysis, group[:SHOWN_PER_GROUP], columns=SHOWN_PER_GROUP, caption=caption)

st.subheader("Train/test leakage")
test, train = explore.leak_pairs(analysis)
st.write(f"**{len(test):,}** test samples have a near or exact copy in the training set (at the build's "
         f"threshold {default:g}): their test accuracy is not a fair estimate.")
if len(test):
    leak_page = widgets.page_number(st, "Page of leaks", selection.page_count(len(test), PAIRS_PER_PAGE), key="lpage")
    lo, hi = selection.page_bounds(len(test), (leak_page - 1) * PAIRS_PER_PAGE, PAIRS_PER_PAGE)
    st.caption("Top row: test samples; below each, its copy in the training set.")
    widgets.image_grid(analysis, test[lo:hi], split="test", columns=PAIRS_PER_PAGE,
                       caption=lambda i: f"test #{i} · {names[analysis.y_test[i]]}")
    widgets.image_grid(analysis, train[lo:hi], columns=PAIRS_PER_PAGE, caption=caption)
