"""Tools for users: edit pictures through ComfyUI headless (`python -m tools.edit_image`,
`python -m tools.batch_edit`), the client that talks to a ComfyUI server, and the launcher that
starts one with this pack."""
