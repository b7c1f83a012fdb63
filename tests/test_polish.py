"""Small polish from issue 18 (points 7 and 8): form defaults, favicon, error pages' links, wording."""

import re


def test_add_user_form_defaults_to_reviewer(admin_client):
    page = admin_client.get("/admin/users").get_data(as_text=True)
    form = page[page.index('class="inline add-user"') :]
    form = form[: form.index("</form>")]
    selected = re.findall(r'<option value="(\w+)" selected>', form)
    assert selected == ["reviewer"]
