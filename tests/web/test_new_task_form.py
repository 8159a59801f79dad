"""The new-task form: all three kinds, uploads, and the server's ValidationError shown
by the field it names."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.fixtures.files import image_bytes
from tests.web.conftest import Visit, WebStack
from tests.web.pages import (
    open_new_task_form,
    progress,
    stored,
    task_status,
    task_text,
    wait_for_status,
)

SALES_CSV = b"region,amount\nnorth,1\nsouth,2\nnorth,3\n"


def test_a_text_task_streams_in_pieces_to_100_percent(visit: Visit, web_stack: WebStack) -> None:
    page = visit.page
    open_new_task_form(page)
    page.get_by_label("Prompt").fill("Tell me about queues")
    page.get_by_role("button", name="Create task").click()

    # Part of the text, while the task is still running: it arrives in pieces.
    page.wait_for_function(
        """() => {
            const text = document.querySelector('[data-testid="task-text"]')?.textContent;
            const status = document.querySelector('article.task h1 .status')?.textContent;
            return text && status === 'PROCESSING';
        }"""
    )
    wait_for_status(page, "COMPLETED")
    expect(progress(page)).to_have_attribute("aria-valuenow", "100")
    task_id = page.url.rsplit("/", 1)[-1]
    expect(task_text(page)).to_have_text(str(stored(web_stack, task_id)["result"]))


def test_a_bad_input_shows_its_validation_error_by_the_field(visit: Visit) -> None:
    page = visit.page
    open_new_task_form(page)
    page.get_by_label("Prompt").fill("x")
    page.get_by_label("Model").fill("no-such-model")
    page.get_by_role("button", name="Create task").click()

    error = page.locator('[data-field="model"] [data-error-for="model"]')
    expect(error).to_contain_text("Unknown model 'no-such-model'")
    expect(page.get_by_role("heading", name="New task")).to_be_visible()


def test_an_uploaded_image_is_processed_and_shown(visit: Visit) -> None:
    page = visit.page
    open_new_task_form(page)
    page.get_by_label("Kind").select_option("IMAGE_PROCESSING")
    page.get_by_label("File").set_input_files(
        {"name": "gradient.png", "mimeType": "image/png", "buffer": image_bytes((64, 48))}
    )
    page.get_by_label("Operation 1").select_option("resize")
    page.get_by_label("width").fill("32")
    page.get_by_label("height").fill("24")
    page.get_by_role("button", name="Create task").click()

    wait_for_status(page, "COMPLETED")
    image = page.get_by_role("img", name="Result")
    expect(image).to_be_visible()
    page.wait_for_function(
        "image => image.complete && image.naturalWidth === 32 && image.naturalHeight === 24",
        arg=image.element_handle(),
    )


def test_a_data_task_shows_its_group_by_table(visit: Visit) -> None:
    page = visit.page
    open_new_task_form(page)
    page.get_by_label("Kind").select_option("DATA_ANALYSIS")
    page.get_by_label("File").set_input_files(
        {"name": "sales.csv", "mimeType": "text/csv", "buffer": SALES_CSV}
    )
    page.get_by_label("Group by columns").fill("region")
    page.get_by_label("Aggregated column").fill("amount")
    page.get_by_label("Aggregations").fill("sum")
    page.get_by_role("button", name="Create task").click()

    wait_for_status(page, "COMPLETED")
    north = page.locator("table.records tr", has_text="north").first
    expect(north).to_contain_text("4")
    expect(task_status(page)).to_have_text("COMPLETED")
