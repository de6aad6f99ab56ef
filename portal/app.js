// Lanyard's Access view: the cluster list (/clusters) and one cluster's access
// (/clusters/{id}/access), over the portal endpoints with the session cookie.
// Every write carries the CSRF value the capabilities call returns. Nothing
// here reads, shows or stores a token: the session stays in its HttpOnly
// cookie. Text from the server is only ever set as text, never as HTML.
"use strict";

(function () {
  const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const ROLES = ["view", "edit", "admin", "cluster-admin"];
  const main = document.getElementById("main");
  const notice = document.getElementById("notice");
  let csrf = null;
  let poll = null;

  // ----- small helpers -------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function say(message) {
    notice.textContent = message;
    if (message) setTimeout(() => { if (notice.textContent === message) notice.textContent = ""; }, 6000);
  }

  function signIn() {
    const back = location.pathname + location.search;
    location.assign("/auth/login?return_to=" + encodeURIComponent(back));
  }

  // A failed request: its status, and the server's error (code, message, field).
  class Failure extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || "the request failed (HTTP " + status + ")");
      this.status = status;
      this.code = error.code || "";
      this.field = error.field || "";
    }
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (method !== "GET") {
      if (csrf) headers["X-CSRF-Token"] = csrf;
      if (body !== undefined) headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Failure(0, { error: { code: "network", message: "Lanyard could not be reached (" + e.message + ")." } });
    }
    if (response.status === 401) {
      signIn();
      throw new Failure(401, { error: { code: "unauthenticated", message: "Signing you in…" } });
    }
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
    if (!response.ok) throw new Failure(response.status, typeof data === "object" ? data : null);
    return data;
  }

  function age(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  }

  function statusCell(grant) {
    const labels = { pending: "pending", applied: "applied", failed: "failed", cluster_offline: "cluster offline" };
    return el("span", { class: "status status-" + grant.status, text: labels[grant.status] || grant.status },
      grant.status === "failed" && grant.error ? el("span", { class: "error-detail", text: grant.error }) : null);
  }

  // Not yet what the agent will report: waiting for it, or for it to come back.
  function unsettled(grant) {
    return grant.status === "pending" || grant.status === "cluster_offline";
  }

  function where(grant) {
    return grant.scope === "namespace" ? "namespace " + grant.namespace : "whole cluster";
  }

  // A load that failed for a reason other than signing in: say so, offer a retry.
  function problem(error, retry) {
    main.replaceChildren(
      el("div", { class: "problem", role: "alert" },
        el("p", { text: error.message }),
        el("button", { type: "button", onclick: retry, text: "Try again" })));
  }

  // ----- the cluster list ----------------------------------------------------

  async function clusterList() {
    document.title = "Clusters · Lanyard";
    let data;
    try {
      data = await api("GET", "/api/v1/clusters");
    } catch (e) {
      if (e.status !== 401) problem(e, clusterList);
      return;
    }
    const items = data.clusters.map((c) =>
      el("li", {},
        el("a", { href: "/clusters/" + encodeURIComponent(c.id) + "/access", text: c.name }),
        " ",
        el("span", { class: "muted", text: (c.agent.online ? "agent online" : "agent offline") + (c.access_supported ? "" : " · sandbox") })));
    main.replaceChildren(
      el("h1", { text: "Clusters" }),
      items.length ? el("ul", { class: "clusters" }, items) : el("p", { text: "Your organisation has no clusters yet." }));
  }

  // ----- one cluster's access ------------------------------------------------

  async function access(clusterId) {
    clearTimeout(poll);
    let caps;
    try {
      caps = await api("GET", "/org/clusters/" + encodeURIComponent(clusterId) + "/access/capabilities");
    } catch (e) {
      if (e.status === 401) return;
      if (e.code === "access_unavailable") return explain("Cluster Access is not available",
        "Cluster Access is turned off on this Lanyard deployment, so access to clusters cannot be granted or used here. An operator turns it on with the access_gateway_enabled setting.");
      if (e.status === 404) return explain("No such cluster", "This cluster does not exist in your organisation, or it was deleted.");
      return problem(e, () => access(clusterId));
    }
    csrf = caps.csrf_token || null;
    document.title = caps.cluster_name + " · Access · Lanyard";
    const heading = el("h1", { text: "Access to " + caps.cluster_name });
    if (!caps.supported) {
      main.replaceChildren(heading, el("div", { class: "explain", role: "note" },
        el("p", { text: "Cluster Access is not available for this cluster: " + (caps.reason || "it does not support it") + "." }),
        el("p", { text: "Sandbox clusters are reached through their own tooling; nothing can be granted here." })));
      return;
    }
    const parts = [heading, agentLine(caps), mine(caps)];
    if (caps.can_manage) parts.push(...(await admin(caps)));
    main.replaceChildren(...parts);
  }

  function explain(title, text) {
    main.replaceChildren(el("h1", { text: title }), el("div", { class: "explain", role: "note" }, el("p", { text })));
  }

  function agentLine(caps) {
    return el("p", { class: "muted", text: caps.agent_online
      ? "The cluster's agent is online: grants are applied within seconds."
      : "The cluster's agent is offline: grants wait until it connects." });
  }

  // What the caller has here, and how to use it.
  function mine(caps) {
    const section = el("section", { "aria-labelledby": "mine-h" }, el("h2", { id: "mine-h", text: "Your access" }));
    if (!caps.has_access) {
      section.append(el("p", { text: "You have no access to this cluster. An admin of your organisation can grant you a role here." }));
      return section;
    }
    section.append(el("ul", {}, caps.grants.map((g) =>
      el("li", {}, el("strong", { text: g.role }), " in the " + where(g) + " — ", statusCell(g)))));
    const namespaced = caps.grants.filter((g) => g.scope === "namespace").map((g) => g.namespace);
    const download = el("button", { type: "button", id: "download-kubeconfig", onclick: () => downloadKubeconfig(caps), text: "Download kubeconfig" });
    section.append(
      el("div", { class: "actions" }, download),
      el("p", {}, "Or with the CLI: ", el("code", { text: "lanyard cluster kubeconfig add " + caps.cluster_name })));
    if (namespaced.length) {
      section.append(el("p", { text: "Your access is to namespace " + namespaced.join(", ") +
        ": kubectl uses it from the kubeconfig's context, or pass -n " + namespaced[0] + "." }));
    }
    return section;
  }

  async function downloadKubeconfig(caps) {
    let text;
    try {
      text = await api("GET", "/org/clusters/" + encodeURIComponent(caps.cluster_id) + "/access/kubeconfig");
    } catch (e) {
      if (e.status !== 401) say("The kubeconfig could not be downloaded: " + e.message);
      return;
    }
    const url = URL.createObjectURL(new Blob([text], { type: "application/yaml" }));
    const link = el("a", { href: url, download: "lanyard-" + caps.cluster_name + ".kubeconfig" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    say("Kubeconfig downloaded. It holds no secret: kubectl asks the lanyard CLI for a short-lived token.");
  }

  // The admin's part: grants, the grant form, revoke all.
  async function admin(caps) {
    const base = "/org/clusters/" + encodeURIComponent(caps.cluster_id) + "/access";
    let grants, members;
    try {
      [grants, members] = await Promise.all([api("GET", base + "/grants"), api("GET", base + "/members")]);
    } catch (e) {
      if (e.status === 401) return [];
      return [el("div", { class: "problem", role: "alert" }, el("p", { text: e.message }),
        el("button", { type: "button", onclick: () => access(caps.cluster_id), text: "Try again" }))];
    }
    if (grants.grants.some(unsettled)) poll = setTimeout(() => refreshGrants(caps), 2000);
    return [grantTable(caps, grants.grants), grantForm(caps, members.members), revokeAllPanel(caps, grants.grants.length)];
  }

  async function refreshGrants(caps) {
    const table = document.getElementById("grants");
    if (!table) return;
    try {
      const grants = await api("GET", "/org/clusters/" + encodeURIComponent(caps.cluster_id) + "/access/grants");
      table.replaceWith(grantTable(caps, grants.grants));
      if (grants.grants.some(unsettled)) poll = setTimeout(() => refreshGrants(caps), 2000);
    } catch (e) {
      if (e.status !== 401) {
        say("Refreshing the grants failed (" + e.message + "); retrying.");
        poll = setTimeout(() => refreshGrants(caps), 5000);
      }
    }
  }

  function grantTable(caps, grants) {
    const rows = grants.map((g) => el("tr", {},
      el("td", { text: g.email }), el("td", { text: g.role }), el("td", { text: g.scope }),
      el("td", { text: g.namespace || "—" }), el("td", {}, statusCell(g)),
      el("td", { text: age(g.created_at), title: g.created_at }),
      el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": "Revoke " + g.role + " of " + g.email + " in the " + where(g),
        onclick: (event) => revoke(caps, g, event.currentTarget), text: "Revoke" }))));
    return el("section", { id: "grants", "aria-labelledby": "grants-h" },
      el("h2", { id: "grants-h", text: "Grants" }),
      grants.length
        ? el("div", { class: "table-wrap" }, el("table", {},
          el("caption", { text: grants.length + " live grant(s) on " + caps.cluster_name }),
          el("thead", {}, el("tr", {}, ["Member", "Role", "Scope", "Namespace", "Status", "Age", ""].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, rows)))
        : el("p", { text: "Nobody has access to this cluster." }));
  }

  async function revoke(caps, grant, button) {
    button.disabled = true;
    try {
      await api("DELETE", "/org/clusters/" + encodeURIComponent(caps.cluster_id) + "/access/grants/" + encodeURIComponent(grant.id));
      say("Revoked " + grant.role + " of " + grant.email + ".");
      await access(caps.cluster_id);
    } catch (e) {
      button.disabled = false;
      if (e.status !== 401) say("Revoking failed: " + e.message);
    }
  }

  function grantForm(caps, members) {
    const eligible = members.filter((m) => m.status === "active");
    const member = el("select", { id: "grant-email", name: "email", required: true, "aria-describedby": "grant-email-error" },
      el("option", { value: "", text: "Choose a member" }),
      eligible.map((m) => el("option", { value: m.email, text: m.name ? m.name + " <" + m.email + ">" : m.email })));
    const role = el("select", { id: "grant-role", name: "role", "aria-describedby": "grant-role-error" },
      ROLES.map((r) => el("option", { value: r, text: r })));
    const scopeNs = el("input", { type: "radio", id: "scope-namespace", name: "scope", value: "namespace", checked: true });
    const scopeCluster = el("input", { type: "radio", id: "scope-cluster", name: "scope", value: "cluster" });
    const namespace = el("input", { type: "text", id: "grant-namespace", name: "namespace", autocomplete: "off", spellcheck: "false",
      "aria-describedby": "grant-namespace-error", maxlength: "63" });
    const errors = {
      email: el("p", { id: "grant-email-error", class: "field-error" }),
      role: el("p", { id: "grant-role-error", class: "field-error" }),
      namespace: el("p", { id: "grant-namespace-error", class: "field-error" }),
    };
    const submit = el("button", { type: "submit", text: "Grant access" });

    function scope() { return scopeCluster.checked ? "cluster" : "namespace"; }
    function sync() {
      const atCluster = scope() === "cluster";
      namespace.disabled = atCluster;
      const clusterAdmin = role.querySelector('option[value="cluster-admin"]');
      clusterAdmin.disabled = !atCluster;
      clusterAdmin.textContent = atCluster ? "cluster-admin" : "cluster-admin (whole cluster only)";
      if (!atCluster && role.value === "cluster-admin") role.value = "admin";
      checkNamespace();
    }
    function checkNamespace() {
      const value = namespace.value;
      let message = "";
      if (scope() === "namespace") {
        if (value === "") message = "";
        else if (value.length > 63) message = "At most 63 characters.";
        else if (!DNS1123.test(value)) message = "Lower-case letters, digits and '-', starting and ending with a letter or digit.";
      }
      errors.namespace.textContent = message;
      namespace.setAttribute("aria-invalid", message ? "true" : "false");
      return !message;
    }
    namespace.addEventListener("input", checkNamespace);
    for (const input of [scopeNs, scopeCluster, role]) input.addEventListener("change", sync);

    const form = el("form", { class: "grant", novalidate: true, "aria-labelledby": "grant-h" },
      el("div", {}, el("label", { for: "grant-email", text: "Member" }), member, errors.email),
      el("div", {}, el("label", { for: "grant-role", text: "Role" }), role, errors.role),
      el("fieldset", {}, el("legend", { text: "Scope" }),
        el("label", { for: "scope-namespace" }, scopeNs, " One namespace"),
        el("label", { for: "scope-cluster" }, scopeCluster, " Whole cluster")),
      el("div", {}, el("label", { for: "grant-namespace", text: "Namespace" }), namespace, errors.namespace),
      el("div", { class: "actions" }, submit));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      for (const e of Object.values(errors)) e.textContent = "";
      if (!member.value) { errors.email.textContent = "Choose the member to grant."; member.focus(); return; }
      if (scope() === "namespace" && !namespace.value) { errors.namespace.textContent = "Name the namespace."; namespace.focus(); return; }
      // The live check only advises: the server decides, and its message replaces the hint.
      const body = { email: member.value, role: role.value, scope: scope() };
      if (scope() === "namespace") body.namespace = namespace.value;
      submit.disabled = true;
      try {
        await api("POST", "/org/clusters/" + encodeURIComponent(caps.cluster_id) + "/access/grants", body);
        say("Granted " + body.role + " to " + body.email + ".");
        await access(caps.cluster_id);
      } catch (e) {
        submit.disabled = false;
        if (e.status === 401) return;
        const target = errors[e.field] || errors.email;
        target.textContent = e.message;
        if (e.field === "namespace") { namespace.setAttribute("aria-invalid", "true"); namespace.focus(); }
      }
    });
    sync();
    return el("section", { "aria-labelledby": "grant-h" },
      el("h2", { id: "grant-h", text: "Grant access" }),
      eligible.length ? form : el("p", { text: "No member can be granted yet: people appear here once they have signed in." }));
  }

  function revokeAllPanel(caps, count) {
    const confirmName = el("input", { type: "text", id: "revoke-all-name", autocomplete: "off", spellcheck: "false" });
    const go = el("button", { type: "button", class: "danger", disabled: true, text: "Revoke everything" });
    const cancel = el("button", { type: "button", class: "secondary", text: "Cancel" });
    const dialog = el("dialog", { id: "revoke-all-dialog", "aria-labelledby": "revoke-all-title" },
      el("h2", { id: "revoke-all-title", text: "Revoke all access to " + caps.cluster_name + "?" }),
      el("p", { text: "This removes every grant on this cluster (" + count + " now) and invalidates every token already issued for it: everyone loses access at once, and their next kubectl request is refused." }),
      el("label", { for: "revoke-all-name", text: "Type the cluster's name, " + caps.cluster_name + ", to confirm" }),
      confirmName,
      el("div", { class: "actions" }, go, cancel));
    confirmName.addEventListener("input", () => { go.disabled = confirmName.value !== caps.cluster_name; });
    cancel.addEventListener("click", () => dialog.close());
    go.addEventListener("click", async () => {
      go.disabled = true;
      try {
        const result = await api("POST", "/org/clusters/" + encodeURIComponent(caps.cluster_id) + "/access/revoke-all");
        dialog.close();
        say("Revoked " + result.revoked + " grant(s); every earlier token is refused.");
        await access(caps.cluster_id);
      } catch (e) {
        go.disabled = false;
        if (e.status !== 401) say("Revoking everything failed: " + e.message);
      }
    });
    const open = el("button", { type: "button", class: "danger", id: "revoke-all", text: "Revoke all access…",
      onclick: () => { confirmName.value = ""; go.disabled = true; dialog.showModal(); confirmName.focus(); } });
    return el("section", { "aria-labelledby": "danger-h" },
      el("h2", { id: "danger-h", text: "Revoke all" }),
      el("p", { class: "muted", text: "For an incident: every grant and every token of this cluster, at once." }),
      open, dialog);
  }

  // ----- routing -------------------------------------------------------------

  async function who() {
    try {
      const me = await api("GET", "/api/v1/me");
      document.getElementById("who").textContent = me.member.email + " · " + me.organisation;
    } catch (_) { /* shown by the view's own request */ }
  }

  const match = location.pathname.match(/^\/clusters\/([^/]+)\/access\/?$/);
  who();
  if (match) access(decodeURIComponent(match[1]));
  else clusterList();
})();
