"""6.0 tab: an image cut into patches, and how many tokens a ViT reads; the `/patches_and_tokens` endpoint."""

import gradio as gr

from demos import examples, media
from demos.compute import patches
from demos.tabs import common
from demos.tabs.concept import Concept

CALL_TO_ACTION = "Pick a patch size and count the tokens"
EXAMPLE_IMAGE = str(examples.IMAGES_DIR / "chelsea.jpg")
EXAMPLE_PATCH = 16


def example_call() -> tuple:
    return EXAMPLE_IMAGE, EXAMPLE_PATCH


def build_tab(endpoints: bool = True) -> common.ReadyExample:
    @common.action("patches_and_tokens")
    def patches_and_tokens(image_path, patch_size: int, progress=gr.Progress()):
        """Cut an image into square patches: each patch is one token for a Vision Transformer.

        Args:
            image_path: the image, as an http(s) URL.
            patch_size: the patch side in pixels (8, 14, 16 or 32).

        Returns:
            the image with its patch grid (PNG)
            a markdown summary
            the numbers: patch_size, grid, tokens
        """
        result = patches.cut(media.load_image(image_path), int(patch_size))
        n = result.numbers()
        return result.grid_image, f"**{n['tokens']} tokens**: a {n['grid'][0]}×{n['grid'][1]} grid.", n

    common.call_to_action(CALL_TO_ACTION)
    with gr.Row():
        with gr.Column():
            image = common.image_input("Image", value=EXAMPLE_IMAGE, elem_id="patches-image")
            patch = gr.Radio([8, 14, 16, 32], value=EXAMPLE_PATCH, label="Patch size")
            run = gr.Button("Count the tokens", variant="primary", elem_id="patches-run")
        with gr.Column():
            grid = common.output_image("The patches", elem_id="patches-grid", elem_classes=[common.RESULT])
            summary = gr.Markdown(elem_id="patches-summary")
            numbers = gr.JSON(visible=False)
    outputs = [grid, summary, numbers]
    common.describe_pictures(numbers, [grid], lambda n: [f"The image cut into {n['tokens']} patches."])
    run.click(patches_and_tokens, [image, patch], outputs, api_name=common.endpoint("patches_and_tokens", endpoints))
    return common.ReadyExample("patches", outputs, lambda progress: patches_and_tokens(*example_call(), progress))


CONCEPT = Concept("patches", "6.0 Patches and tokens", "patches-and-tokens", build_tab, CALL_TO_ACTION,
                  endpoint="/patches_and_tokens", example_call=example_call, endpoints=("/patches_and_tokens",),
                  run_button="patches-run", summary="patches-summary", example_summary="tokens", pictures=1)
