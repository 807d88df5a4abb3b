// Apply the saved colour mode before the first paint (the dcc.Store "theme" keeps it in localStorage).
(function () {
    var mode = 'light';
    try {
        if (JSON.parse(window.localStorage.getItem('theme')) === 'dark') { mode = 'dark'; }
    } catch (e) { /* no saved mode */ }
    document.documentElement.setAttribute('data-bs-theme', mode);
})();
